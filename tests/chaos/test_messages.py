"""Message faults against a real system: the order saga's engine and its four services.

Duplicated commands and replies, stale replies and a rewound consumer group change no
service store and no saga; poison of every kind on every consumed topic ends in a
dead-letter topic with its reason; the dead-letter check finds what is missing or
wrongly there.
"""

from __future__ import annotations

import asyncio
import json
import random
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sagas.chaos.checks import dlq
from sagas.chaos.faults import messages, poison
from sagas.chaos.faults.base import ChaosContext
from sagas.dev.outcomes import OutcomeWatcher
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from services.app import app as examples
from services.audit import audit_orders
from services.workload import ORDERS
from tests.reliability.order_run import OrderRun

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.chaos,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(420),  # set-up included: broker, four services, an engine, six sagas
]

SERVICES = ORDERS.services
LIMIT = 64 * 1024
"""The consumers' payload limit in this system: oversized poison fits under Kafka's."""

EXPECTED_REASONS = {
    "random_bytes": "bad-magic-byte",
    "truncated_avro": "payload-corrupt",
    "unknown_schema": "unknown-schema",
    "missing_headers": "header-missing",
    "forged_type": "type-mismatch",
    "bad_ce_id": "header-invalid",
    "oversized": "payload-too-large",
    "max_size": "payload-too-large",
}


@dataclass
class Run:
    orders: OrderRun
    ctx: ChaosContext

    @property
    def layout(self) -> SystemLayout:
        return self.orders.layout


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Run]:
    """One engine and the four order services; six orders placed and ended."""
    workdir = tmp_path_factory.mktemp("messages")
    layout = SystemLayout(
        kafka_bootstrap,
        workdir,
        prefix=f"m{uuid.uuid4().hex[:8]}.",
        partitions=3,
        extra_env={"SAGAS_MAX_PAYLOAD_BYTES": str(LIMIT)},
    )
    codec = examples.codec()
    with Supervisor(workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        for name in SERVICES:
            system.start(system.service_spec(name, ORDERS.seeds[name], web=name == "orders"))
        system.start(system.engine_spec(1, sagas=(ORDERS.saga,)))
        watcher = OutcomeWatcher(kafka_bootstrap, codec, layout.prefix)
        orders = OrderRun(system, codec, watcher)
        ctx = ChaosContext(
            system=system,
            broker=None,  # type: ignore[arg-type]  # the session's broker is not ours to fault
            bootstrap_servers=kafka_bootstrap,
            direct_servers=kafka_bootstrap,
            codec=codec,
            prefix=layout.prefix,
            workdir=workdir,
            rng=random.Random(20260),
            engines=["engine-1"],
            services=list(SERVICES),
        )
        await system.wait_healthy("orders")
        await topic_created(kafka_bootstrap, f"{layout.prefix}sagas.events")  # by the engine
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(watcher.run())
            try:
                await orders.place(6, concurrency=3)
                await orders.wait_until_ended(deadline_s=90)
                ready = Run(orders, ctx)
                # The orders service follows the end events on its own: let it finish.
                await settled(ready, groups(ready))
                yield ready
            finally:
                watching.cancel()
        assert not supervisor.unexpected_exits(), supervisor.unexpected_exits()
        supervisor.stop_all()
        assert not supervisor.unclean_stops(), supervisor.unclean_stops()
    codec.close()


async def topic_created(servers: str, name: str, deadline_s: float = 120) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while name not in await messages.list_topics(servers):
        assert loop.time() < end, f"{name} was not created in {deadline_s}s"
        await asyncio.sleep(0.5)  # polling interval of a condition with a deadline


# -- what the system holds ---------------------------------------------------------------


def dump_store(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table of a service's SQLite file."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: sorted(map(tuple, db.execute(f"SELECT * FROM {t}")), key=repr) for t in tables}
    finally:
        db.close()


def stores(run: Run) -> dict[str, dict[str, list[tuple[Any, ...]]]]:
    return {name: dump_store(run.layout.service_db(name)) for name in SERVICES}


async def sagas(run: Run) -> dict[str, dict[str, Any]]:
    """The latest changelog body of every saga."""
    topic = f"{run.layout.prefix}sagas.{ORDERS.saga}.changelog"
    latest: dict[str, dict[str, Any]] = {}
    for record in await messages.read_topics(run.ctx.direct_servers, [topic]):
        if record.value is not None and not record.key.startswith(b"held\x00"):
            latest[record.key.decode()] = json.loads(record.value)["body"]
    return latest


def without_history(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in ("history", "updated")}


async def settled(run: Run, groups: dict[str, list[str]], deadline_s: float = 60) -> None:
    """Wait until each group has committed past the last record of its topics."""
    servers = run.ctx.direct_servers
    names = sorted({t for ts in groups.values() for t in ts})
    targets: dict[TopicPartition, int] = {}
    for record in await messages.read_topics(servers, names, last=50):
        tp = TopicPartition(record.topic, record.partition)
        targets[tp] = max(targets.get(tp, 0), record.offset + 1)
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    try:
        for group, topics in groups.items():
            mine = {tp: off for tp, off in targets.items() if tp.topic in topics}
            while True:
                committed = await admin.list_consumer_group_offsets(group, partitions=list(mine))
                behind = {tp for tp, off in mine.items() if committed[tp].offset < off}
                if not behind:
                    break
                run.orders.assert_processes_alive()
                assert loop.time() < end, f"{group} still behind on {sorted(behind)}"
                await asyncio.sleep(0.3)  # polling interval of a condition with a deadline
    finally:
        await admin.close()


def groups(run: Run) -> dict[str, list[str]]:
    """Every consumer group of the system and the topics it consumes."""
    p = run.layout.prefix
    found = {f"{p}{name}-service": [f"{p}{name}.commands"] for name in SERVICES if name != "orders"}
    found[f"{p}orders-service"] = [f"{p}orders.events"]
    found[f"{p}inventory-service"].append(f"{p}orders.events")  # OrderFulfilled ends a hold
    # The engine reads the start events where they land, in the same group as its inbox.
    found[f"{p}sagas-engine"] = [f"{p}sagas.{ORDERS.saga}.inbox", f"{p}orders.events"]
    return found


async def audit_clean(run: Run) -> None:
    violations, broken = await run.orders.audit()
    assert not violations, violations
    assert not broken, broken
    dbs = {name: run.layout.service_db(name) for name in SERVICES}
    assert not audit_orders(dbs, run.orders.expected)


# -- duplicates, stale replies, a rewound group -------------------------------------------


async def test_duplicates_and_stale_replies_change_no_store_and_no_saga(run: Run) -> None:
    before_stores = stores(run)
    before_sagas = await sagas(run)
    assert len(before_sagas) == 6

    await messages.duplicate_commands(run.ctx)
    await messages.duplicate_replies(run.ctx)
    await messages.stale_replies(run.ctx)
    assert run.ctx.faults["duplicate_commands"] == 1
    assert run.ctx.notes["duplicated_commands"] > 0
    assert run.ctx.notes["duplicated_replies"] > 0
    # Every saga has ended: each reply re-produced by stale_replies is stale.
    assert run.ctx.notes["stale_replies"] > 0

    await settled(run, {g: t for g, t in groups(run).items() if not g.endswith("engine")})
    await settled(run, groups(run))
    assert stores(run) == before_stores
    after = await sagas(run)
    assert after.keys() == before_sagas.keys()
    ignored = 0
    for saga_id, body in after.items():
        assert without_history(body) == without_history(before_sagas[saga_id]), saga_id
        new = body["history"][len(before_sagas[saga_id]["history"]) :]
        assert all(e["note"].startswith("ignored") for e in new), (saga_id, new)
        ignored += len(new)
    # The replies replayed for duplicated commands and the re-produced ones all arrived.
    assert ignored >= run.ctx.notes["duplicated_replies"] + run.ctx.notes["stale_replies"]
    await audit_clean(run)


async def test_a_rewound_participant_applies_nothing_twice(run: Run) -> None:
    before = stores(run)
    await messages.group_rewind(run.ctx)
    assert run.ctx.faults["group_rewind"] == 1
    assert run.ctx.notes["rewound_records"] > 0
    (name,) = run.ctx.killed
    assert run.layout.prefix  # the rewound group is this run's own
    assert run.orders.system.supervisor.processes[name].alive()
    await settled(run, groups(run))
    assert stores(run) == before
    await audit_clean(run)


# -- poison and dead letters ---------------------------------------------------------------


async def dead_lettered(run: Run) -> tuple[dict[str, dict[str, str]], set[str]]:
    """Poison key -> {dead-letter topic: reason} over every DLQ of the run, and the keys
    of the dead letters that were shortened to fit (``dlq_truncated``)."""
    names = dlq.dead_letter_topics(run.ctx, await messages.list_topics(run.ctx.direct_servers))
    found: dict[str, dict[str, str]] = {}
    shortened: set[str] = set()
    for record in await messages.read_topics(run.ctx.direct_servers, names):
        headers = dict(record.headers)
        found.setdefault(record.key.decode(), {})[record.topic] = headers["dlq_reason"].decode()
        if "dlq_truncated" in headers:
            shortened.add(record.key.decode())
    return found, shortened


async def test_poison_on_every_consumed_topic_is_dead_lettered_with_its_reason(run: Run) -> None:
    p = run.layout.prefix
    await poison.poison(run.ctx)
    assert set(run.ctx.poison) == {
        f"{p}sagas.{ORDERS.saga}.inbox",
        f"{p}orders.events",
        *(f"{p}{name}.commands" for name in ("inventory", "payments", "shipping")),
    }
    await settled(run, groups(run))
    found, shortened = await dead_lettered(run)
    consumers = {
        f"{p}sagas.{ORDERS.saga}.inbox": {f"{p}sagas.{ORDERS.saga}.dlq"},
        # The engine, the orders service and inventory (OrderFulfilled ends a hold).
        f"{p}orders.events": {f"{p}sagas.router.dlq", f"{p}orders.dlq", f"{p}inventory.dlq"},
        **{f"{p}{n}.commands": {f"{p}{n}.dlq"} for n in ("inventory", "payments", "shipping")},
    }
    for topic, keys in run.ctx.poison.items():
        kinds = {key.split(":")[1] for key in keys}
        assert kinds == set(EXPECTED_REASONS), (topic, kinds)
        for key in keys:
            kind = key.split(":")[1]
            # Every consumer of the topic dead-letters it, with the reason of its kind.
            assert found.get(key) == dict.fromkeys(consumers[topic], EXPECTED_REASONS[kind]), (
                topic,
                key,
                found.get(key),
            )
    # A record as large as Kafka takes has a dead letter too large to produce whole.
    assert shortened == {k for keys in run.ctx.poison.values() for k in keys if ":max_size:" in k}
    assert await dlq.dead_letters(run.ctx, []) == {}
    # No partition stopped: new sagas still run to their end.
    await run.orders.place(2, start=100)
    await run.orders.wait_until_ended(deadline_s=60)
    await audit_clean(run)


async def test_the_dead_letter_check_finds_missing_poison_and_valid_dead_letters(run: Run) -> None:
    p = run.layout.prefix
    if not run.ctx.poison:  # run alone: the poison test did not run before
        await poison.poison(run.ctx)
        await settled(run, groups(run))
    ghost = "chaos-poison:never-sent:0"
    run.ctx.poison.setdefault(f"{p}inventory.commands", []).append(ghost)
    # A valid message in a DLQ: the first command the engine sent, copied there.
    (command, *_) = await messages.read_topics(run.ctx.direct_servers, [f"{p}payments.commands"])
    producer = AIOKafkaProducer(bootstrap_servers=run.ctx.direct_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            f"{p}payments.dlq", command.value, key=command.key, headers=list(command.headers)
        )
        # A poison copy without a reason.
        some = run.ctx.poison[f"{p}payments.commands"][0]
        await producer.send_and_wait(f"{p}payments.dlq", b"x", key=some.encode())
    finally:
        await producer.stop()
    try:
        violations = await dlq.dead_letters(run.ctx, [])
    finally:
        run.ctx.poison[f"{p}inventory.commands"].remove(ghost)
    assert violations["poison_not_dead_lettered"] == [
        f"poison {ghost} sent to {p}inventory.commands is in no dead-letter topic"
    ]
    (valid,) = violations["valid_message_in_dlq"]
    assert command.key.decode() in valid
    (unreasoned,) = violations["poison_without_reason"]
    assert some in unreasoned
