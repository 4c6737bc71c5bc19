"""The engine on the in-memory broker: definition versions side by side, a registry that
goes down. No Kafka: the same engine, units, worker and SQLite store, `MemoryTransport`
underneath."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sagas.contracts.fake_registry import FakeRegistry
from sagas.contracts.settings import ContractSettings
from sagas.runtime import changelog, topics
from sagas.runtime.engine import Engine
from sagas.runtime.errors import GroupMismatch
from sagas.runtime.partitioning import partition_for
from sagas.runtime.store import Store
from sagas.runtime.transport.memory import MemoryBroker, MemoryTransport
from sagas.runtime.transport.records import TP
from services.app import app as examples
from services.definitions.onboarding import ONBOARDING
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from services.messages.access import CloudAccessGranted, GrantCloudAccess
from services.messages.assets import LaptopDelivered, LaptopProvisioned, ProvisionLaptop
from services.messages.directory import AccountCreated, CreateAccount
from services.messages.hr import EmployeeHired, Role
from services.messages.inventory import ReserveStock, StockReserved
from services.messages.licensing import AssignLicences, LicencesAssigned
from services.messages.mail import CreateMailbox, MailboxCreated
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
    PaymentAuthorized,
    PaymentCaptured,
)
from services.messages.shipping import ScheduleShipment, ShipmentScheduled
from tests.integration.engine_support import order_placed
from tests.memory_system import (
    DEADLINE,
    Participants,
    engine,
    eventually,
    publish,
    settings,
    until,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)

ONBOARDING_V2 = dataclasses.replace(
    ONBOARDING,
    version=2,
    steps=tuple(s for s in ONBOARDING.steps if s.name != "laptop_delivered"),
)
"""A newer onboarding that no longer waits for the laptop's delivery."""

ONBOARDING_REPLIES = {
    CreateAccount: lambda c: AccountCreated(
        employee_id=c.employee_id, account_id=f"acc-{c.employee_id}", username=c.employee_id
    ),
    ProvisionLaptop: lambda c: LaptopProvisioned(
        employee_id=c.employee_id, asset_tag=f"tag-{c.employee_id}", model=c.model
    ),
    CreateMailbox: lambda c: MailboxCreated(employee_id=c.employee_id, address="x@y.z"),
    AssignLicences: lambda c: LicencesAssigned(employee_id=c.employee_id, products=c.products),
    GrantCloudAccess: lambda c: CloudAccessGranted(employee_id=c.employee_id, roles=c.roles),
}
ONBOARDING_SERVICES = ("directory", "assets", "mail", "licensing", "access")


def hired(employee_id: str) -> EmployeeHired:
    return EmployeeHired(
        employee_id=employee_id,
        full_name="Ada Lovelace",
        role=Role.ENGINEER,
        start_date=date(2030, 2, 1),
        hired_at=NOW,
    )


async def state_of(store: Store, saga: str, saga_id: str) -> tuple[str, int] | None:
    body = await store.get(saga, saga_id)
    return None if body is None else (str(body["state"]), int(body["version"]))


async def test_an_older_version_still_gets_its_events_across_a_restart(tmp_path: Path) -> None:
    broker = MemoryBroker()
    codec = examples.codec()
    commands = [topics.commands(s) for s in ONBOARDING_SERVICES]
    participants = Participants(broker, codec, commands, ONBOARDING_REPLIES)
    config = settings(tmp_path)
    e1, e2 = "employee:e-1", "employee:e-2"
    async with participants.running():
        # Version 1 alone: e-1 starts on it and waits for its laptop's delivery.
        async with engine(broker, [ONBOARDING], config, codec) as first:

            async def e1_waits() -> bool:
                body = await first.store.get("onboarding", e1)
                return body is not None and body["stage"] == 2  # laptop_delivered

            publish(broker, codec, "hr.events", "e-1", hired("e-1"))
            await eventually(e1_waits, "e-1 to wait for its laptop")
        # Version 2 ships (version 1 kept while e-1 runs on it); the engine restarts.
        async with engine(broker, [ONBOARDING, ONBOARDING_V2], config, codec) as second:
            publish(broker, codec, "hr.events", "e-2", hired("e-2"))

            async def e2_done() -> bool:
                return await state_of(second.store, "onboarding", e2) == ("COMPLETED", 2)

            await eventually(e2_done, "e-2 to complete on version 2 (no delivery to wait for)")
            assert await state_of(second.store, "onboarding", e1) == ("RUNNING", 1)
            # The delivery is routed by version 1's await, which version 2 no longer has.
            delivered = LaptopDelivered(employee_id="e-1", asset_tag="tag-e-1", delivered_at=NOW)
            publish(broker, codec, "assets.events", "e-1", delivered)

            async def e1_done() -> bool:
                return await state_of(second.store, "onboarding", e1) == ("COMPLETED", 1)

            await eventually(e1_done, "e-1 to complete on version 1")
    codec.close()


ORDER_COMMANDS = [topics.commands(s) for s in ("inventory", "payments", "shipping")]
"""The command topics the order saga's participants read."""

ORDER_REPLIES = {
    ReserveStock: lambda c: StockReserved(order_id=c.order_id, reservation_id=f"r-{c.order_id}"),
    AuthorizePayment: lambda c: PaymentAuthorized(
        order_id=c.order_id,
        authorization_id=f"a-{c.order_id}",
        amount=c.amount,
        currency=c.currency,
    ),
    ScheduleShipment: lambda c: ShipmentScheduled(
        order_id=c.order_id, shipment_id=f"s-{c.order_id}", carrier="ACME"
    ),
    CapturePayment: lambda c: PaymentCaptured(
        order_id=c.order_id, authorization_id=c.authorization_id, capture_id=f"p-{c.order_id}"
    ),
}


async def orders_completed(running: Engine, count: int, what: str) -> None:
    """Wait until the engine's store holds ``count`` order sagas, all completed."""

    async def done() -> bool:
        counts = await running.store.counts_by_state("order_fulfilment")
        return counts == {"COMPLETED": count}

    await eventually(done, what)


async def test_a_registry_outage_delays_sagas_and_dead_letters_nothing(tmp_path: Path) -> None:
    registry = FakeRegistry()
    contracts = ContractSettings(schema_registry_url="http://registry.test")
    engine_codec = examples.codec(contracts, transport=registry.transport())
    client_codec = examples.codec(contracts, transport=registry.transport())
    await client_codec.prepare()  # the services registered their schemas long ago
    broker = MemoryBroker()
    participants = Participants(broker, client_codec, ORDER_COMMANDS, ORDER_REPLIES)
    config = settings(tmp_path)
    async with (
        participants.running(),
        engine(broker, [ORDER_FULFILMENT], config, engine_codec) as running,
    ):
        registry.fail_with = 503  # down: what the engine has not seen yet cannot decode
        for i in range(5):
            publish(broker, client_codec, "orders.events", f"o-{i}", order_placed(f"o-{i}"))
        await until(lambda: running.worker.registry.waits >= 3, "the engine to wait on it")
        assert await running.store.counts_by_state("order_fulfilment") == {}
        registry.fail_with = None  # back

        await orders_completed(running, 5, "every saga to complete once the registry is back")
    dead_letter_topics = (topics.dead_letters("order_fulfilment"), topics.ROUTER_DEAD_LETTERS)
    specs = broker.topics()
    dead = [
        r
        for t in dead_letter_topics
        for k in range(specs[t].partitions)
        for r in broker.records(TP(t, k))
    ]
    assert dead == []
    engine_codec.close()
    client_codec.close()


async def test_engines_of_different_sagas_in_one_group_both_stop_with_group_mismatch(
    tmp_path: Path,
) -> None:
    """`sagas run onboarding` and `sagas run order_fulfilment` in one group: neither
    reads every topic, so both stop, each `run` raising `GroupMismatch` itself (what
    `sagas run` prints in one line), not wrapped in its TaskGroup's ExceptionGroup."""
    broker = MemoryBroker()
    codec = examples.codec()
    engines: list[Engine] = []
    stores: list[Store] = []
    for definition in (ONBOARDING, ORDER_FULFILMENT):
        stores.append(await Store.open(tmp_path / f"{definition.name}.db"))
        engines.append(
            Engine(
                [definition],
                settings(tmp_path, definition.name),
                transport=MemoryTransport(broker),
                codec=codec,
                classes=examples.classes,
                store=stores[-1],
            )
        )
    try:
        first = asyncio.create_task(engines[0].run())
        await engines[0].wait_ready(timedelta(seconds=DEADLINE))
        second = asyncio.create_task(engines[1].run())
        done, _ = await asyncio.wait({first, second}, timeout=DEADLINE)
        assert done == {first, second}, "both engines stop"
        for task in (first, second):
            error = task.exception()
            assert type(error) is GroupMismatch, repr(error)
            assert "give each set of sagas its own SAGAS_ENGINE_GROUP" in str(error)
    finally:
        for running in engines:
            await running.close()
        for store in stores:
            await store.close()
        codec.close()


async def test_an_event_topic_with_more_partitions_than_the_inboxes_is_forwarded(
    tmp_path: Path,
) -> None:
    # orders.events was there first, with 6 partitions; the engine's inboxes have 3. The
    # units of partitions 3 to 5 hold no saga: they forward what lands there.
    codec = examples.codec()
    broker = MemoryBroker()
    broker.create_topics([topics.TopicSpec("orders.events", 6)])
    participants = Participants(broker, codec, ORDER_COMMANDS, ORDER_REPLIES)
    async with (
        participants.running(),
        engine(broker, [ORDER_FULFILMENT], settings(tmp_path, partitions=3), codec) as running,
    ):
        ids = [f"o-{i}" for i in range(12)]
        landed = {partition_for(i.encode(), 6) for i in ids}
        assert landed & {3, 4, 5}, landed  # some land where no saga lives
        for order_id in ids:
            publish(broker, codec, "orders.events", order_id, order_placed(order_id))

        await orders_completed(running, len(ids), "every saga to complete")
        assert running.loop.owned == [0, 1, 2, 3, 4, 5]
    codec.close()


async def test_a_store_caught_up_from_the_changelog_holds_what_the_engine_stored(
    tmp_path: Path,
) -> None:
    # The changelog without a broker: a fresh store, caught up slice by slice from the
    # in-memory changelog, holds every instance as the engine's own store does.
    codec = examples.codec()
    broker = MemoryBroker()
    ids = [f"o-{i}" for i in range(20)]
    async with (
        Participants(broker, codec, ORDER_COMMANDS, ORDER_REPLIES).running(),
        engine(broker, [ORDER_FULFILMENT], settings(tmp_path), codec) as running,
    ):
        for order_id in ids:
            publish(broker, codec, "orders.events", order_id, order_placed(order_id))

        await orders_completed(running, len(ids), "every saga to complete")
        stored = {i: await running.store.get("order_fulfilment", f"order:{i}") for i in ids}
    assert all(body is not None and body["state"] == "COMPLETED" for body in stored.values())
    fresh = await Store.open(tmp_path / "fresh.db")
    try:
        reader = MemoryTransport(broker).partition_reader()
        read = 0
        for k in range(3):
            tp = TP(topics.changelog("order_fulfilment"), k)
            read += await changelog.catch_up(reader, fresh, "order_fulfilment", tp, chunk=7)
        assert read >= 5 * len(ids)  # one record per input, at least
        caught_up = {i: await fresh.get("order_fulfilment", f"order:{i}") for i in ids}
        assert caught_up == stored
        # Caught up already: a second catch-up reads nothing.
        tp = TP(topics.changelog("order_fulfilment"), 0)
        assert await changelog.catch_up(reader, fresh, "order_fulfilment", tp) == 0
    finally:
        await fresh.close()
    codec.close()
