"""Tombstones: a compensation that comes before its command makes the service refuse
that command, in the compensation's own transaction (no broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Record
from sagas.participant import Compensated, Context, Handler, Participant, Rejected, Unavailable
from sagas.participant.processor import REFUSED, Processor
from sagas.participant.store import tombstoned_ids
from sagas.participant.testing import command_record, decode, open_processor
from services.app import app as examples
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockItem,
    StockReleased,
    StockReserved,
)

RESERVE_1 = "order:o-1:reserve_stock:1"
RESERVE_2 = "order:o-1:reserve_stock:2"
UNDO = "order:o-1:reserve_stock:compensate:1"


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


class Ledger:
    """A participant whose handlers write a row per reserve and record what undo saw."""

    def __init__(self, undo_raises: Exception | None = None) -> None:
        self.seen: list[tuple[Compensated, ...]] = []
        self.undo_raises = undo_raises

    async def reserve(self, command: ReserveStock, ctx: Context) -> Record:
        await ctx.db.execute("INSERT INTO ledger VALUES (?, 'APPLIED')", (ctx.envelope.id,))
        return StockReserved(order_id=command.order_id, reservation_id=ctx.new_id("res"))

    async def release(self, command: ReleaseStock, ctx: Context) -> Record:
        self.seen.append(ctx.compensated)
        for c in ctx.compensated:
            await ctx.db.execute(
                "UPDATE ledger SET status = 'UNDONE' WHERE command_id = ?", (c.command_id,)
            )
        if self.undo_raises is not None:
            raise self.undo_raises
        return StockReleased(order_id=command.order_id, reservation_id=command.reservation_id)

    def participant(self) -> Participant:
        return Participant(
            name="ledger",
            handlers=(
                Handler(ReserveStock, self.reserve, (StockReserved,)),
                Handler(ReleaseStock, self.release, (StockReleased,)),
            ),
            schema="CREATE TABLE IF NOT EXISTS ledger (command_id TEXT PRIMARY KEY, status TEXT);",
        )


def reserve() -> ReserveStock:
    return ReserveStock(order_id="o-1", items=(StockItem(sku="SKU-1", quantity=1),))


def release() -> ReleaseStock:
    return ReleaseStock(order_id="o-1", reservation_id="")


@pytest.fixture
async def ledger(tmp_path: Path, codec: Codec) -> AsyncIterator[tuple[Ledger, Processor]]:
    service = Ledger()
    p = await open_processor(service.participant(), tmp_path / "ledger.sqlite3", codec)
    try:
        yield service, p
    finally:
        await p.store.close()


async def rows(p: Processor) -> list[tuple[str, str]]:
    async with p.store.db.execute("SELECT command_id, status FROM ledger ORDER BY 1") as c:
        return [(str(a), str(b)) async for a, b in c]


async def send(
    p: Processor, codec: Codec, command: Record, command_id: str, **kw: object
) -> Record:
    [out] = await p.command(command_record(codec, command, command_id=command_id, **kw))
    return decode(codec, out).payload


async def test_a_command_after_its_compensation_is_refused_and_applies_nothing(
    ledger: tuple[Ledger, Processor], codec: Codec
) -> None:
    service, p = ledger
    undone = await send(p, codec, release(), UNDO, compensates=(RESERVE_1,))
    assert isinstance(undone, StockReleased)
    assert service.seen == [(Compensated(command_id=RESERVE_1, reply=None, refused=True),)]
    assert await tombstoned_ids(p.store.db) == [RESERVE_1]

    record = command_record(codec, reserve(), command_id=RESERVE_1)
    [refusal] = await p.command(record)
    failed = decode(codec, refusal).payload
    assert isinstance(failed, CommandFailed)
    assert failed.retryable is False
    assert failed.reason.startswith(REFUSED)
    assert UNDO in failed.reason
    assert (failed.command_id, failed.command_type) == (RESERVE_1, "inventory.ReserveStock")
    assert decode(codec, refusal).in_reply_to == RESERVE_1
    assert await rows(p) == []  # nothing applied
    assert p.applied == 1  # the compensation only
    assert await p.command(record) == [refusal]  # a redelivery replays the refusal


async def test_a_compensation_sees_what_each_command_did_and_tombstones_the_rest(
    ledger: tuple[Ledger, Processor], codec: Codec
) -> None:
    service, p = ledger
    reserved = await send(p, codec, reserve(), RESERVE_1)
    await send(p, codec, release(), UNDO, compensates=(RESERVE_1, RESERVE_2))

    [seen] = service.seen
    assert seen == (
        Compensated(command_id=RESERVE_1, reply=reserved, refused=False),
        Compensated(command_id=RESERVE_2, reply=None, refused=True),
    )
    assert await rows(p) == [(RESERVE_1, "UNDONE")]
    assert await tombstoned_ids(p.store.db) == [RESERVE_2]  # the applied one is not refused
    assert isinstance(await send(p, codec, reserve(), RESERVE_2), CommandFailed)
    assert await rows(p) == [(RESERVE_1, "UNDONE")]


async def test_context_helpers_name_the_replies_and_the_ids_of_the_compensated_commands(
    tmp_path: Path, codec: Codec
) -> None:
    found: list[tuple[list[StockReserved], tuple[str, ...]]] = []

    async def undo(command: ReleaseStock, ctx: Context) -> Record:
        found.append((ctx.compensated_replies(StockReserved), ctx.compensated_ids("res")))
        return StockReleased(order_id=command.order_id, reservation_id="")

    base = Ledger().participant()
    participant = Participant(
        name="ledger",
        handlers=(base.handlers[0], Handler(ReleaseStock, undo, (StockReleased,))),
        schema=base.schema,
    )
    p = await open_processor(participant, tmp_path / "l.sqlite3", codec)
    try:
        reserved = await send(p, codec, reserve(), RESERVE_1)
        await send(p, codec, release(), UNDO, compensates=(RESERVE_1, RESERVE_2))
    finally:
        await p.store.close()
    assert isinstance(reserved, StockReserved)
    [(replies, ids)] = found
    assert replies == [reserved]
    assert ids[0] == reserved.reservation_id  # new_id("res") of the first command
    assert len(ids) == 2
    assert ids[1] != ids[0]


async def test_a_compensation_that_fails_retryably_leaves_no_tombstone(
    tmp_path: Path, codec: Codec
) -> None:
    service = Ledger(undo_raises=Unavailable("later"))
    p = await open_processor(service.participant(), tmp_path / "l.sqlite3", codec)
    try:
        failed = await send(p, codec, release(), UNDO, compensates=(RESERVE_1,))
        assert isinstance(failed, CommandFailed)
        assert failed.retryable
        assert await tombstoned_ids(p.store.db) == []  # rolled back with the undo
        assert isinstance(await send(p, codec, reserve(), RESERVE_1), StockReserved)
        assert await rows(p) == [(RESERVE_1, "APPLIED")]
    finally:
        await p.store.close()


async def test_a_compensation_refused_for_good_still_tombstones_its_commands(
    tmp_path: Path, codec: Codec
) -> None:
    service = Ledger(undo_raises=Rejected("cannot undo"))
    p = await open_processor(service.participant(), tmp_path / "l.sqlite3", codec)
    try:
        failed = await send(p, codec, release(), UNDO, compensates=(RESERVE_1,))
        assert isinstance(failed, CommandFailed)
        assert not failed.retryable
        # nobody would undo it any more: a late command must not apply
        assert await tombstoned_ids(p.store.db) == [RESERVE_1]
        assert isinstance(await send(p, codec, reserve(), RESERVE_1), CommandFailed)
        assert await rows(p) == []
    finally:
        await p.store.close()


async def test_a_compensation_without_the_header_tombstones_nothing(
    ledger: tuple[Ledger, Processor], codec: Codec
) -> None:
    service, p = ledger
    await send(p, codec, release(), UNDO)
    assert service.seen == [()]
    assert await tombstoned_ids(p.store.db) == []
    assert isinstance(await send(p, codec, reserve(), RESERVE_1), StockReserved)


async def test_a_long_run_of_attempts_is_tombstoned_whole(
    ledger: tuple[Ledger, Processor], codec: Codec
) -> None:
    service, p = ledger
    ids = tuple(f"order:o-1:reserve_stock:{n}" for n in range(1, 301))  # > 4 KiB of header
    assert len(",".join(ids)) > 4096
    await send(p, codec, release(), UNDO, compensates=ids)
    assert len(service.seen[0]) == 300
    assert await tombstoned_ids(p.store.db) == list(ids)
