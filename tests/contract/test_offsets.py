"""Offsets sent with a transaction become the group's committed offsets when it commits."""

from __future__ import annotations

from sagas.runtime.transport.base import GroupConsumer, Transport
from sagas.runtime.transport.records import TP, OutRecord
from tests.contract.support import (
    committed_transaction,
    consumer,
    eventually,
    new_topic,
    poll_until,
    started,
    unique,
)


async def test_offsets_commit_with_their_transaction(transport: Transport) -> None:
    topic = await new_topic(transport)
    tp = TP(topic, 0)
    await committed_transaction(
        transport, [OutRecord(topic, b"%d" % i, partition=0) for i in range(3)]
    )
    group = unique("group")
    first = consumer(transport, group, [topic])
    await first.start()
    producer = await started(transport)
    try:
        assert await first.committed(tp) == 0  # none yet: the partition's first offset
        await producer.begin()
        await producer.send_offsets({tp: 2}, group)
        assert await first.committed(tp) == 0
        await producer.commit()
        await _committed_is(first, tp, 2)
        await producer.begin()
        await producer.send_offsets({tp: 3}, group)
        await producer.abort()
        assert await first.committed(tp) == 2
    finally:
        await producer.stop()
        await first.stop()

    second = consumer(transport, group, [topic])
    await second.start()
    try:
        [got] = await poll_until([second], lambda got: bool(got[0]), "records after the commit")
        assert got[0].offset == 2  # a member starts at the group's committed offset
    finally:
        await second.stop()


async def _committed_is(member: GroupConsumer, tp: TP, offset: int) -> None:
    async def reached() -> bool:
        return await member.committed(tp) == offset

    await eventually(reached, f"the group's committed offset of {tp} is {offset}")
