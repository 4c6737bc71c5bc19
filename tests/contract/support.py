"""Helpers of the contract suite: topics, transactions, waits under a deadline."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.base import (
    GroupConsumer,
    PartitionReader,
    Rebalance,
    TransactionalProducer,
    Transport,
)
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord

REQUEST_TIMEOUT = timedelta(seconds=10)
SESSION = timedelta(seconds=6)
"""Kafka's shortest session timeout by default (``group.min.session.timeout.ms``)."""
FETCH_WAIT = timedelta(milliseconds=50)
POLL_WAIT = timedelta(milliseconds=200)
DEADLINE = 30.0
"""Seconds a wait for a condition may take before the test fails."""

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


async def new_topic(transport: Transport, partitions: int = 1) -> str:
    name = unique("topic")
    assert await transport.ensure_topics([TopicSpec(name, partitions)], 1) == [name]
    return name


async def started(
    transport: Transport, transactional_id: str | None = None
) -> TransactionalProducer:
    producer = transport.transactional_producer(
        transactional_id or unique("txn"), request_timeout=REQUEST_TIMEOUT
    )
    await producer.start()
    return producer


async def write(producer: TransactionalProducer, record: OutRecord) -> Delivered:
    """Send ``record`` in the open transaction and wait until it is written."""
    return await (await producer.send(record))


async def committed_transaction(
    transport: Transport, records: Sequence[OutRecord]
) -> list[Delivered]:
    """Write ``records`` in one committed transaction of a producer of its own."""
    producer = await started(transport)
    try:
        await producer.begin()
        delivered = [await write(producer, r) for r in records]
        await producer.commit()
    finally:
        await producer.stop()
    return delivered


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Wait until ``check()`` holds. On Kafka a transaction's markers are written after
    its commit returns, so what it made visible becomes visible a little later."""
    try:
        async with asyncio.timeout(DEADLINE):
            # The broker offers nothing to wait on: ask again after a short interval.
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE}s: {what}") from None


async def end_is(reader: PartitionReader, tp: TP, offset: int) -> None:
    async def reached() -> bool:
        return await reader.end_offset(tp) == offset

    await eventually(reached, f"the last stable offset of {tp} is {offset}")


async def read_slices(
    reader: PartitionReader, tp: TP, start: int, end: int, max_records: int
) -> list[tuple[list[Consumed], int]]:
    async with asyncio.timeout(DEADLINE):
        return [
            (records, after) async for records, after in reader.read(tp, start, end, max_records)
        ]


async def poll_until(
    consumers: Sequence[GroupConsumer],
    done: Callable[[list[list[Consumed]]], bool],
    what: str,
) -> list[list[Consumed]]:
    """Poll every consumer at once (a member that does not poll holds up a rebalance on
    the in-memory broker) until ``done(got)``, where ``got`` holds the records each one
    returned so far; returns ``got``."""
    got: list[list[Consumed]] = [[] for _ in consumers]
    try:
        async with asyncio.timeout(DEADLINE):
            while not done(got):
                polled = await asyncio.gather(*(c.poll(POLL_WAIT, 100) for c in consumers))
                for mine, batch in zip(got, polled, strict=True):
                    mine.extend(r for records in batch.values() for r in records)
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE}s: {what}") from None
    return got


def placed(records: Sequence[Consumed]) -> list[tuple[int, bytes | None]]:
    """Offset and value of each record."""
    return [(r.offset, r.value) for r in records]


def flat(slices: Sequence[tuple[list[Consumed], int]]) -> list[Consumed]:
    return [r for records, _ in slices for r in records]


class Quiet:
    """A rebalance listener with nothing to do."""

    async def revoked(self, tps: Sequence[TP]) -> None:
        return None

    async def assigned(self, tps: Sequence[TP]) -> None:
        return None


def consumer(
    transport: Transport, group_id: str, topics: Sequence[str], listener: Rebalance | None = None
) -> GroupConsumer:
    return transport.group_consumer(
        group_id, topics, listener or Quiet(), session_timeout=SESSION, fetch_wait=FETCH_WAIT
    )
