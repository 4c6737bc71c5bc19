"""Without transactions: an idempotent producer's records are readable once written, and
a member commits its own offsets, refused for a partition that is not its own."""

from __future__ import annotations

import pytest

from sagas.runtime.errors import NotAssigned
from sagas.runtime.transport.base import Transport
from sagas.runtime.transport.records import TP, OutRecord
from tests.contract.support import (
    REQUEST_TIMEOUT,
    consumer,
    eventually,
    new_topic,
    placed,
    poll_until,
    unique,
)


async def test_an_idempotent_producers_records_are_readable_once_written(
    transport: Transport,
) -> None:
    topic = await new_topic(transport)
    producer = transport.idempotent_producer(unique("plain"), request_timeout=REQUEST_TIMEOUT)
    await producer.start()
    reader = consumer(transport, unique("group"), [topic])
    await reader.start()
    try:
        sent = [await producer.send(OutRecord(topic, b"%d" % i, partition=0)) for i in range(3)]
        delivered = [await s for s in sent]
        assert [(d.topic, d.partition, d.offset) for d in delivered] == [
            (topic, 0, 0),
            (topic, 0, 1),
            (topic, 0, 2),
        ]
        [got] = await poll_until([reader], lambda got: len(got[0]) >= 3, "the three records")
        assert placed(got) == [(0, b"0"), (1, b"1"), (2, b"2")]
    finally:
        await producer.stop()
        await reader.stop()


async def test_a_member_commits_its_own_offsets(transport: Transport) -> None:
    topic = await new_topic(transport, partitions=2)
    mine, other = TP(topic, 0), TP(f"{topic}-absent", 0)
    group = unique("group")
    member = consumer(transport, group, [topic])
    await member.start()
    try:
        await poll_until([member], lambda _: len(member.assignment()) == 2, "the assignment")
        assert await member.committed(mine) == 0
        await member.commit({mine: 5})

        async def moved() -> bool:
            return await member.committed(mine) == 5

        await eventually(moved, "the committed offset is 5")
        with pytest.raises(NotAssigned):
            await member.commit({other: 1})  # never this member's: nothing committed
        assert await member.committed(mine) == 5
    finally:
        await member.stop()
