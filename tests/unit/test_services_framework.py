"""The participant framework's processor, without a broker: dedupe, replies, dead letters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant, Rejected, Unavailable
from sagas.participant.processor import Incoming, Processor
from sagas.participant.testing import (
    REPLY_TO,
    command_envelope,
    command_record,
    decode,
    incoming,
    open_processor,
)
from services import inventory
from services.app import app as examples
from services.inventory import stock_of
from services.messages.inventory import ReserveStock, StockItem, StockReserved

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


@pytest.fixture
async def processor(tmp_path: Path, codec: Codec) -> AsyncIterator[Processor]:
    p = await open_processor(inventory.participant(), tmp_path / "inventory.sqlite3", codec)
    try:
        yield p
    finally:
        await p.store.close()


def reserve(order_id: str = "o-1", quantity: int = 2) -> ReserveStock:
    return ReserveStock(order_id=order_id, items=(StockItem(sku="SKU-1", quantity=quantity),))


async def test_a_command_gets_a_reply_keyed_by_saga_with_its_metadata(
    processor: Processor, codec: Codec
) -> None:
    envelope = command_envelope(
        reserve(),
        command_id="order:o-1:reserve_stock:1",
        saga_id="order:o-1",
        traceparent=TRACEPARENT,
    )
    [out] = await processor.command(incoming(codec, envelope))

    assert out.topic == REPLY_TO
    assert out.key == b"order:o-1"
    reply = decode(codec, out)
    assert reply.id == "order:o-1:reserve_stock:1:reply"
    assert reply.source == "/services/inventory"
    assert reply.saga_id == "order:o-1"
    assert reply.in_reply_to == "order:o-1:reserve_stock:1"  # the saga's step finds it
    assert reply.traceparent == TRACEPARENT
    assert isinstance(reply.payload, StockReserved)


async def test_a_duplicate_replays_the_stored_reply_without_acting_again(
    processor: Processor, codec: Codec
) -> None:
    record = command_record(codec, reserve(), command_id="c-1")
    first = await processor.command(record)
    second = await processor.command(record)

    assert first == second  # byte for byte, headers included
    assert await stock_of(processor.store.db, "SKU-1") == (98, 2)
    assert processor.applied == 1


async def test_bad_bytes_go_to_the_dead_letter_topic(processor: Processor, codec: Codec) -> None:
    good = command_record(codec, reserve(), command_id="c-1")
    bad = Incoming(
        topic="inventory.commands",
        partition=2,
        offset=7,
        key=b"k",
        value=b"\x00\x00junk",
        headers=good.headers,
    )
    [out] = await processor.command(bad)

    assert out.topic == "inventory.dlq"
    assert (out.key, out.value) == (b"k", b"\x00\x00junk")
    headers = dict(out.headers)
    assert headers["dlq_offset"] == b"7"
    assert headers["dlq_partition"] == b"2"
    assert headers["dlq_reason"] in (b"truncated", b"unknown-schema", b"payload-corrupt")


async def test_a_command_the_service_does_not_handle_is_dead_lettered(
    processor: Processor, codec: Codec
) -> None:
    reply_as_command = StockReserved(order_id="o-1", reservation_id="r")
    [out] = await processor.command(command_record(codec, reply_as_command, command_id="x"))
    assert out.topic == "inventory.dlq"
    assert dict(out.headers)["dlq_reason"] == b"unhandled-type"


async def test_a_command_without_reply_to_is_dead_lettered(
    processor: Processor, codec: Codec
) -> None:
    envelope = command_envelope(reserve(), command_id="c-1", reply_to=None)
    [out] = await processor.command(incoming(codec, envelope))
    assert dict(out.headers)["dlq_reason"] == b"no-reply-to"
    assert await stock_of(processor.store.db, "SKU-1") == (100, 0)


def _failing(exc: Exception) -> Participant:
    calls: list[str] = []

    async def handle(command: ReserveStock, ctx: Context) -> Record:
        calls.append(command.order_id)
        await ctx.db.execute("UPDATE stock SET available = 0")  # rolled back
        raise exc

    base = inventory.participant()
    return Participant(
        name="inventory",
        handlers=(Handler(ReserveStock, handle, (StockReserved,)),),
        schema=base.schema,
        seed=base.seed,
        default_seed=base.default_seed,
    )


@pytest.mark.parametrize(
    ("exc", "retryable"),
    [(Unavailable("try later"), True), (Rejected("never"), False), (KeyError("bug"), False)],
)
async def test_a_raising_handler_replies_command_failed_and_writes_nothing(
    tmp_path: Path, codec: Codec, exc: Exception, retryable: bool
) -> None:
    p = await open_processor(_failing(exc), tmp_path / "db.sqlite3", codec)
    try:
        [out] = await p.command(command_record(codec, reserve(), command_id="c-9"))
        assert decode(codec, out).in_reply_to == "c-9"
        failed = decode(codec, out).payload
        assert isinstance(failed, CommandFailed)
        assert (failed.command_id, failed.command_type) == ("c-9", "inventory.ReserveStock")
        assert failed.retryable is retryable
        assert await stock_of(p.store.db, "SKU-1") == (100, 0)
        again = await p.command(command_record(codec, reserve(), command_id="c-9"))
        # a non-retryable failure is stored and replayed; a retryable one is tried again
        assert (again == [out]) is (not retryable)
    finally:
        await p.store.close()


def test_usages_list_handled_commands_and_replies() -> None:
    usages = inventory.participant().usages()
    handled = [u for u in usages if u.type == "inventory.ReserveStock"]
    assert handled
    assert handled[0].fields == ("order_id", "items")
    assert {u.type for u in usages} >= {
        "inventory.StockReserved",
        "inventory.StockUnavailable",
        "inventory.StockReleased",
    }


def test_two_handlers_for_one_command_type_are_refused() -> None:
    handler = inventory.participant().handlers[0]
    with pytest.raises(ValueError, match="more than one handler"):
        Participant(name="x", handlers=(handler, handler))
