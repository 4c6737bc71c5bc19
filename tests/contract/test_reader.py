"""The partition reader: committed records, positions that count the markers."""

from __future__ import annotations

from sagas.runtime.transport.base import Transport
from sagas.runtime.transport.records import TP, OutRecord
from tests.contract.support import (
    committed_transaction,
    end_is,
    flat,
    new_topic,
    placed,
    read_slices,
)


async def test_positions_move_over_the_markers(transport: Transport) -> None:
    topic = await new_topic(transport)
    tp = TP(topic, 0)
    first = OutRecord(topic, b"a", key=b"k", headers=(("h", b"v"),), partition=0)
    await committed_transaction(transport, [first, OutRecord(topic, b"b", partition=0)])
    await committed_transaction(transport, [OutRecord(topic, b"c", partition=0)])
    # a 0, b 1, marker 2, c 3, marker 4
    reader = transport.partition_reader()
    try:
        await end_is(reader, tp, 5)
        slices = await read_slices(reader, tp, 0, 5, 1)
        records = flat(slices)
        assert placed(records) == [(0, b"a"), (1, b"b"), (3, b"c")]
        assert (records[0].topic, records[0].key, records[0].headers) == (
            topic,
            b"k",
            first.headers,
        )
        assert records[0].header("h") == b"v"
        assert records[0].timestamp > 0
        positions = [after for _, after in slices]
        assert positions == sorted(set(positions))
        assert positions[-1] == 5
        assert all(len(rs) <= 1 and all(r.offset < after for r in rs) for rs, after in slices)

        from_marker = await read_slices(reader, tp, 2, 5, 10)
        assert placed(flat(from_marker)) == [(3, b"c")]
        assert from_marker[-1][1] == 5
        assert await read_slices(reader, tp, 5, 5, 10) == []
    finally:
        await reader.close()
