"""read_committed: an open transaction's records wait, an aborted one's never come, and
the last stable offset is the first offset of the earliest open transaction."""

from __future__ import annotations

import pytest

from sagas.runtime.transport.base import Transport
from sagas.runtime.transport.records import TP, OutRecord
from tests.contract.support import (
    POLL_WAIT,
    committed_transaction,
    consumer,
    end_is,
    flat,
    new_topic,
    placed,
    poll_until,
    read_slices,
    started,
    unique,
    write,
)


async def test_a_consumer_returns_committed_records_only(transport: Transport) -> None:
    topic = await new_topic(transport)
    await committed_transaction(transport, [OutRecord(topic, b"c1", partition=0)])  # 0, marker 1
    aborted = await started(transport)
    await aborted.begin()
    await write(aborted, OutRecord(topic, b"a1", partition=0))  # 2
    await aborted.abort()  # marker 3
    await aborted.stop()
    pending = await started(transport)
    await pending.begin()
    assert (await write(pending, OutRecord(topic, b"o1", partition=0))).offset == 4
    member = consumer(transport, unique("group"), [topic])
    await member.start()
    try:
        [got] = await poll_until([member], lambda got: bool(got[0]), "the committed record")
        assert placed(got) == [(0, b"c1")]
        assert await member.poll(POLL_WAIT, 100) == {}  # o1's transaction is open
        await pending.commit()
        [rest] = await poll_until([member], lambda got: bool(got[0]), "o1 once committed")
        assert placed(rest) == [(4, b"o1")]
        assert rest[0].tp == TP(topic, 0)
    finally:
        await member.stop()
        await pending.stop()


@pytest.mark.parametrize("outcome", ["commit", "abort"])
async def test_the_last_stable_offset_waits_for_the_earliest_open_transaction(
    transport: Transport, outcome: str
) -> None:
    topic = await new_topic(transport)
    tp = TP(topic, 0)
    earliest = await started(transport)
    reader = transport.partition_reader()
    try:
        await earliest.begin()
        assert (await write(earliest, OutRecord(topic, b"r0", partition=0))).offset == 0
        [later] = await committed_transaction(transport, [OutRecord(topic, b"r1", partition=0)])
        assert later.offset == 1  # its marker: 2
        assert await reader.end_offset(tp) == 0
        await (earliest.commit() if outcome == "commit" else earliest.abort())  # marker 3
        await end_is(reader, tp, 4)
        slices = await read_slices(reader, tp, 0, 4, 10)
        expected = [(0, b"r0"), (1, b"r1")] if outcome == "commit" else [(1, b"r1")]
        assert placed(flat(slices)) == expected
        assert slices[-1][1] == 4
    finally:
        await earliest.stop()
        await reader.close()
