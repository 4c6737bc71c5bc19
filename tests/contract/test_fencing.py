"""Starting a producer aborts the open transaction of its transactional id and fences
the earlier producer of it."""

from __future__ import annotations

import pytest

from sagas.runtime.errors import FencedError
from sagas.runtime.transport.base import Transport
from sagas.runtime.transport.records import TP, OutRecord
from tests.contract.support import (
    end_is,
    flat,
    new_topic,
    placed,
    read_slices,
    started,
    unique,
    write,
)


async def test_a_new_producer_fences_the_old_one(transport: Transport) -> None:
    topic = await new_topic(transport)
    tp = TP(topic, 0)
    transactional_id = unique("txn")
    old = await started(transport, transactional_id)
    await old.begin()
    assert (await write(old, OutRecord(topic, b"old", partition=0))).offset == 0
    new = await started(transport, transactional_id)  # the abort marker: 1
    reader = transport.partition_reader()
    try:
        with pytest.raises(FencedError):
            await old.commit()
        with pytest.raises(FencedError):
            await old.abort()
        await new.begin()
        assert (await write(new, OutRecord(topic, b"new", partition=0))).offset == 2
        await new.commit()  # marker 3
        await end_is(reader, tp, 4)
        assert placed(flat(await read_slices(reader, tp, 0, 4, 10))) == [(2, b"new")]
    finally:
        await old.stop()
        await new.stop()
        await reader.close()


async def test_a_fenced_producer_cannot_write(transport: Transport) -> None:
    topic = await new_topic(transport)
    transactional_id = unique("txn")
    old = await started(transport, transactional_id)
    new = await started(transport, transactional_id)
    reader = transport.partition_reader()

    async def transaction() -> None:
        await old.begin()
        await write(old, OutRecord(topic, b"late", partition=0))
        await old.commit()

    try:
        with pytest.raises(FencedError):
            await transaction()
        with pytest.raises(FencedError):
            await old.abort()
        assert await reader.end_offset(TP(topic, 0)) == 0
    finally:
        await old.stop()
        await new.stop()
        await reader.close()
