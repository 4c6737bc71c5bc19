"""A poll's records applied in one SQLite transaction, a savepoint each (no broker)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.errors import RegistryError
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope, Record
from sagas.contracts.settings import ContractSettings
from sagas.participant import Context, Handler, Participant, Rejected, Subscription
from sagas.participant.processor import REFUSED, Incoming, Processor
from sagas.participant.service import prepare_store
from sagas.participant.store import Outbound, Store
from sagas.participant.testing import command_record, decode, incoming
from services.app import app as examples
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockItem,
    StockReleased,
    StockReserved,
)
from services.messages.orders import OrderFulfilled
from tests.registry_support import WatchedRegistry

LEDGER = "CREATE TABLE IF NOT EXISTS ledger (command_id TEXT PRIMARY KEY, status TEXT);"


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


async def reserve(command: ReserveStock, ctx: Context) -> Record:
    await ctx.db.execute("INSERT INTO ledger VALUES (?, 'APPLIED')", (ctx.envelope.id,))
    if command.order_id == "bad":
        raise Rejected("not this one")  # after a write: its savepoint must undo it
    return StockReserved(order_id=command.order_id, reservation_id=ctx.new_id("res"))


async def release(command: ReleaseStock, ctx: Context) -> Record:
    for c in ctx.compensated:
        await ctx.db.execute(
            "UPDATE ledger SET status = 'UNDONE' WHERE command_id = ?", (c.command_id,)
        )
    return StockReleased(order_id=command.order_id, reservation_id=command.reservation_id)


async def fulfilled(event: OrderFulfilled, ctx: Context) -> None:
    if event.order_id == "bug":
        raise KeyError("a bug in the event handler")
    await ctx.db.execute("INSERT INTO ledger VALUES (?, 'EVENT')", (ctx.envelope.id,))


LEDGER_SERVICE = Participant(
    name="ledger",
    handlers=(
        Handler(ReserveStock, reserve, (StockReserved,)),
        Handler(ReleaseStock, release, (StockReleased,)),
    ),
    subscriptions=(Subscription("orders.events", OrderFulfilled, fulfilled, ("order_id",)),),
    schema=LEDGER,
)


class Statements:
    """Counts the ``COMMIT`` statements a store ran."""

    def __init__(self) -> None:
        self.commits = 0

    def __call__(self, sql: str) -> None:
        self.commits += sql.startswith("COMMIT")


async def processor_on(store: Store, codec: Codec) -> Processor:
    await prepare_store(store, LEDGER_SERVICE, None)
    return Processor(LEDGER_SERVICE, store, codec)


@pytest.fixture
async def p(tmp_path: Path, codec: Codec) -> AsyncIterator[Processor]:
    processor = await processor_on(Store(tmp_path / "ledger.sqlite3"), codec)
    try:
        yield processor
    finally:
        await processor.store.close()


def command(codec: Codec, order_id: str, command_id: str, **kw: object) -> Incoming:
    items = (StockItem(sku="SKU-1", quantity=1),)
    return command_record(
        codec, ReserveStock(order_id=order_id, items=items), command_id=command_id, **kw
    )


def event(codec: Codec, order_id: str, event_id: str) -> Incoming:
    payload = OrderFulfilled(order_id=order_id, shipment_id="s", fulfilled_at=datetime.now(UTC))
    envelope = Envelope(
        id=event_id, type=payload.SCHEMA, source="/t", time=datetime.now(UTC), payload=payload
    )
    return incoming(codec, envelope, topic="orders.events")


async def ledger(p: Processor) -> list[tuple[str, str]]:
    async with p.store.db.execute("SELECT command_id, status FROM ledger ORDER BY 1") as c:
        return [(str(a), str(b)) async for a, b in c]


def payloads(codec: Codec, outs: list[list[Outbound]]) -> list[Record]:
    return [decode(codec, out).payload for each in outs for out in each]


async def test_a_batch_is_one_transaction_and_each_record_gets_its_own_outcome(
    p: Processor, codec: Codec
) -> None:
    statements = Statements()
    await p.store.db.set_trace_callback(statements)
    outs = await p.batch(
        [command(codec, "o-1", "c-1"), event(codec, "o-1", "e-1"), command(codec, "o-2", "c-2")]
    )
    await p.store.db.set_trace_callback(None)  # type: ignore[arg-type]  # sqlite3 takes None

    assert statements.commits == 1
    assert [len(each) for each in outs] == [1, 0, 1]  # an event has no reply
    assert [type(r) for r in payloads(codec, outs)] == [StockReserved, StockReserved]
    assert await ledger(p) == [("c-1", "APPLIED"), ("c-2", "APPLIED"), ("e-1", "EVENT")]
    assert p.applied == 2


async def test_batches_commit_a_part_once_it_has_run_its_time(p: Processor, codec: Codec) -> None:
    """`Processor.batches` (the runner's): a transaction is closed, and its replies can
    go, once it has run ``within``; then the next part begins."""
    records = [command(codec, f"o-{i}", f"c-{i}") for i in range(3)]
    statements = Statements()
    await p.store.db.set_trace_callback(statements)
    slow = [outs async for outs in p.batches(records, within=timedelta(0))]
    fast = [outs async for outs in p.batches(records, within=timedelta(minutes=1))]
    await p.store.db.set_trace_callback(None)  # type: ignore[arg-type]  # sqlite3 takes None

    assert [len(part) for part in slow] == [1, 1, 1]  # a transaction per record
    assert [len(part) for part in fast] == [3]  # duplicates now: replayed together
    assert statements.commits == 4
    assert [out for part in slow for out in part] == fast[0]
    assert p.applied == 3


async def test_a_handler_failing_mid_batch_leaves_its_neighbours_applied(
    p: Processor, codec: Codec
) -> None:
    batch = [
        command(codec, "o-1", "c-1"),
        command(codec, "bad", "c-2"),
        command(codec, "o-3", "c-3"),
    ]
    outs = await p.batch(batch)

    first, failed, third = payloads(codec, outs)
    assert isinstance(first, StockReserved)
    assert isinstance(third, StockReserved)
    assert isinstance(failed, CommandFailed)
    assert (failed.command_id, failed.retryable) == ("c-2", False)
    assert await ledger(p) == [("c-1", "APPLIED"), ("c-3", "APPLIED")]  # c-2's write undone
    assert p.applied == 2
    # the non-retryable failure was stored with its neighbours: a redelivery replays it
    assert await p.batch(batch) == outs


async def test_a_duplicate_inside_one_batch_gets_the_stored_reply(
    p: Processor, codec: Codec
) -> None:
    record = command(codec, "o-1", "c-1")
    first, again = await p.batch([record, record])

    assert first == again  # byte for byte, headers included
    assert await ledger(p) == [("c-1", "APPLIED")]
    assert p.applied == 1


async def test_a_compensation_earlier_in_the_batch_refuses_its_command(
    p: Processor, codec: Codec
) -> None:
    undo = command_record(
        codec,
        ReleaseStock(order_id="o-1", reservation_id=""),
        command_id="u-1",
        compensates=("c-1",),
    )
    released, refused = payloads(codec, await p.batch([undo, command(codec, "o-1", "c-1")]))

    assert isinstance(released, StockReleased)
    assert isinstance(refused, CommandFailed)
    assert refused.reason.startswith(REFUSED)
    assert await ledger(p) == []


class Crash(BaseException):
    """The process dies (SIGKILL, power cut) at the marked point."""


class CrashingStore(Store):
    """A store whose next transaction dies after its statements, before ``COMMIT``."""

    crash = True

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with super().transaction() as db:
            yield db
            if self.crash:
                raise Crash


async def test_a_crash_before_the_commit_applies_nothing_of_the_batch(
    tmp_path: Path, codec: Codec
) -> None:
    path = tmp_path / "ledger.sqlite3"
    batch = [command(codec, "o-1", "c-1"), command(codec, "bad", "c-2"), event(codec, "o", "e")]
    crashing = await processor_on(CrashingStore(path), codec)
    with pytest.raises(Crash):
        await crashing.batch(batch)
    await crashing.store.close()

    # Kafka delivers the batch again (its offsets were not committed) to the next process
    p = await processor_on(Store(path), codec)
    try:
        assert await ledger(p) == []
        outs = await p.batch(batch)
        assert [type(r) for r in payloads(codec, outs)] == [StockReserved, CommandFailed]
        assert await ledger(p) == [("c-1", "APPLIED"), ("e", "EVENT")]
        assert p.applied == 1
    finally:
        await p.store.close()


class FailingCommitStore(Store):
    """A store whose first ``COMMIT`` fails (e.g. an I/O error): nothing is kept."""

    failures = 1

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with super().transaction() as db:
            yield db
            if self.failures:
                self.failures -= 1
                raise sqlite3.OperationalError("disk I/O error")


async def test_a_batch_whose_commit_fails_is_applied_again_one_record_at_a_time(
    tmp_path: Path, codec: Codec
) -> None:
    p = await processor_on(FailingCommitStore(tmp_path / "ledger.sqlite3"), codec)
    try:
        outs = await p.batch([command(codec, "o-1", "c-1"), command(codec, "o-2", "c-2")])
        assert [type(r) for r in payloads(codec, outs)] == [StockReserved, StockReserved]
        assert await ledger(p) == [("c-1", "APPLIED"), ("c-2", "APPLIED")]
        assert p.applied == 2
    finally:
        await p.store.close()


async def test_a_lone_command_whose_commit_fails_gets_a_retryable_failure(
    tmp_path: Path, codec: Codec
) -> None:
    p = await processor_on(FailingCommitStore(tmp_path / "ledger.sqlite3"), codec)
    try:
        [failed] = payloads(codec, [await p.command(command(codec, "o-1", "c-1"))])
        assert isinstance(failed, CommandFailed)
        assert failed.retryable
        assert await ledger(p) == []
        [reserved] = payloads(codec, [await p.command(command(codec, "o-1", "c-1"))])
        assert isinstance(reserved, StockReserved)  # tried again: applied now
    finally:
        await p.store.close()


async def test_an_event_handler_error_fails_the_batch_after_what_came_before_it(
    p: Processor, codec: Codec
) -> None:
    """As with one transaction per record: the records before the bad event are applied,
    the error propagates (the runner stops; the offsets stay where they were)."""
    batch = [command(codec, "o-1", "c-1"), event(codec, "bug", "e-1"), command(codec, "o-2", "c-2")]
    with pytest.raises(KeyError, match="a bug"):
        await p.batch(batch)
    assert await ledger(p) == [("c-1", "APPLIED")]


async def test_a_registry_outage_delays_commands_off_the_event_loop(tmp_path: Path) -> None:
    """The schema registry is down: the batch is refused with `RegistryError` (the
    runner retries it later), nothing is applied nor dead-lettered, and the registry is
    never asked on the event loop's thread (its retries sleep); once it answers, the
    same records are applied."""
    watched = WatchedRegistry()
    registry = watched.registry

    contracts = ContractSettings(schema_registry_url="http://registry.test")
    with (
        examples.codec(contracts, transport=registry.transport()) as writer,
        examples.codec(contracts, transport=watched.transport()) as reader,
    ):
        records = [command(writer, "o-1", "c-1"), event(writer, "o-1", "e-1")]
        p = await processor_on(Store(tmp_path / "ledger.sqlite3"), reader)
        try:
            registry.fail_with = 503
            with pytest.raises(RegistryError):
                await p.batch(records)
            assert await ledger(p) == []
            registry.fail_with = None  # back
            outs = await p.batch(records)
            assert await ledger(p) == [("c-1", "APPLIED"), ("e-1", "EVENT")]
        finally:
            await p.store.close()
        assert watched.on_the_loop == []
        assert [type(r) for r in payloads(writer, outs)] == [StockReserved]
