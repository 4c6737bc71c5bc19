"""`ParticipantService.process` (the faust agents' path) and `publish`, without a broker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sagas.contracts.errors import RegistryError
from sagas.contracts.fake_registry import FakeRegistry
from sagas.contracts.record import Envelope
from sagas.contracts.settings import ContractSettings
from sagas.participant import Context, Participant, Subscription
from sagas.participant.service import ParticipantService, prepare_store
from sagas.participant.settings import ServiceSettings
from sagas.participant.testing import incoming, until
from services.app import app as examples
from services.messages.orders import OrderFulfilled
from tests.registry_support import WatchedRegistry

SEEN = "CREATE TABLE IF NOT EXISTS seen (event_id TEXT PRIMARY KEY);"


async def fulfilled(event: OrderFulfilled, ctx: Context) -> None:
    await ctx.db.execute("INSERT INTO seen VALUES (?)", (ctx.envelope.id,))


FOLLOWER = Participant(
    name="follower",
    subscriptions=(Subscription("orders.events", OrderFulfilled, fulfilled, ("order_id",)),),
    schema=SEEN,
)


async def test_a_registry_outage_holds_the_record_until_the_registry_answers(
    tmp_path: Path,
) -> None:
    """The record waits in `process` (handed over again every `RETRY_PAUSE`) instead of
    ending the faust agent with `RegistryError`; once the registry answers it is applied."""
    registry = FakeRegistry()
    contracts = ContractSettings(schema_registry_url="http://registry.test")
    payload = OrderFulfilled(order_id="o-1", shipment_id="s", fulfilled_at=datetime.now(UTC))
    envelope = Envelope(
        id="e-1", type=payload.SCHEMA, source="/t", time=datetime.now(UTC), payload=payload
    )
    with (
        examples.codec(contracts, transport=registry.transport()) as writer,
        examples.codec(contracts, transport=registry.transport()) as codec,
    ):
        record = incoming(writer, envelope, topic="orders.events")
        service = ParticipantService(
            FOLLOWER, ServiceSettings(data_dir=tmp_path, web_port=0), codec=codec
        )
        await prepare_store(service.store, FOLLOWER, None)
        try:
            registry.fail_with = 503
            asked = len(registry.requests)
            task = asyncio.create_task(service.process("orders.events", record))

            async def handed_over_twice() -> bool:
                return task.done() or len(registry.requests) >= asked + 6

            await until(handed_over_twice)
            assert not task.done()
            registry.fail_with = None  # back
            async with asyncio.timeout(10):
                await task
            async with service.store.db.execute("SELECT event_id FROM seen") as cursor:
                assert [row[0] async for row in cursor] == ["e-1"]
        finally:
            await service.store.close()


async def test_publish_asks_a_registry_that_is_down_off_the_event_loop(tmp_path: Path) -> None:
    """A service may publish before its first poll (e.g. an HTTP handler): the writer
    schema is registered off the event loop (the registry client's retries sleep), and
    an outage is `RegistryError` to the caller, with nothing sent."""
    watched = WatchedRegistry()
    registry = watched.registry

    contracts = ContractSettings(schema_registry_url="http://registry.test")
    event = OrderFulfilled(order_id="o-1", shipment_id="s", fulfilled_at=datetime.now(UTC))
    with examples.codec(contracts, transport=watched.transport()) as codec:
        service = ParticipantService(
            FOLLOWER, ServiceSettings(data_dir=tmp_path, web_port=0), codec=codec
        )
        try:
            registry.fail_with = 503
            with pytest.raises(RegistryError):
                await service.publish(event, domain="orders", key="o-1", event_id="e-1")
        finally:
            await service.store.close()
    assert registry.requests  # it was asked...
    assert watched.on_the_loop == []  # ...never from the event loop's thread
