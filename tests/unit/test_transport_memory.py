"""What `MemoryTransport` promises beyond the contract suite (tests/contract/): Kafka's
partitioner to the bit, determinism, sessions, zombies, and the injected faults."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from sagas.runtime.errors import FencedError, InDoubt, TopicSetupError
from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.memory import MemoryBroker, MemoryGroupConsumer, MemoryTransport
from sagas.runtime.transport.memory.log import partition_for_key
from sagas.runtime.transport.memory.producer import MemoryTransactionalProducer
from sagas.runtime.transport.records import TP, Consumed, OutRecord

SESSION = timedelta(seconds=30)
NOW = timedelta(0)
TIMEOUT = timedelta(seconds=5)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[TP]]] = []

    async def revoked(self, tps: Sequence[TP]) -> None:
        self.calls.append(("revoked", list(tps)))

    async def assigned(self, tps: Sequence[TP]) -> None:
        self.calls.append(("assigned", list(tps)))


async def _transport(partitions: int = 4, **broker: object) -> MemoryTransport:
    transport = MemoryTransport(MemoryBroker(**broker))  # type: ignore[arg-type]
    await transport.ensure_topics([TopicSpec("t", partitions)], 1)
    return transport


async def _producer(transport: MemoryTransport, tid: str = "p") -> MemoryTransactionalProducer:
    producer = transport.transactional_producer(tid, request_timeout=TIMEOUT)
    await producer.start()
    return producer


def _member(
    transport: MemoryTransport, listener: Recorder | None = None, session: timedelta = SESSION
) -> MemoryGroupConsumer:
    return transport.group_consumer(
        "g", ["t"], listener or Recorder(), session_timeout=session, fetch_wait=NOW
    )


def _partitions(member: MemoryGroupConsumer) -> list[int]:
    return sorted(tp.partition for tp in member.assignment())


# -- partitioner, determinism -------------------------------------------------------------


def test_murmur2_gives_the_java_clients_hashes() -> None:
    # Utils.murmur2 of the Java client, as signed ints (values from Kafka's own tests).
    from aiokafka.partitioner import murmur2

    java = {b"1": -1993445489, b"12": 126087238, b"123": -267702483, b"12345": -1188365604}
    assert {k: murmur2(k) - (1 << 32) * (murmur2(k) >> 31) for k in java} == java
    # toPositive(hash) % partitions:
    assert partition_for_key(b"1", 5) == (-1993445489 & 0x7FFFFFFF) % 5


async def test_records_without_a_key_go_round_robin() -> None:
    transport = await _transport(partitions=3)
    delivered = [transport.broker.publish(OutRecord("t", b"v")) for _ in range(4)]
    assert [d.partition for d in delivered] == [0, 1, 2, 0]


async def test_the_assignment_deals_partitions_in_the_order_of_joins() -> None:
    transport = await _transport()
    first, second = _member(transport), _member(transport)
    await first.start()
    await second.start()
    await asyncio.gather(first.poll(NOW, 10), second.poll(NOW, 10))
    await first.poll(NOW, 10)
    assert (_partitions(first), _partitions(second)) == ([0, 2], [1, 3])


async def test_record_timestamps_come_from_the_wall_clock() -> None:
    at = datetime(2030, 1, 1, tzinfo=UTC)
    transport = await _transport(wall_clock=lambda: at)
    transport.broker.publish(OutRecord("t", b"v", partition=0))
    [record] = transport.broker.records(TP("t", 0))
    assert record.timestamp == int(at.timestamp() * 1000)


# -- visibility ---------------------------------------------------------------------------


async def test_a_commit_is_visible_when_it_returns() -> None:
    transport = await _transport(partitions=1)
    tp = TP("t", 0)
    producer = await _producer(transport)
    await producer.begin()
    await producer.send(OutRecord("t", b"v"))
    await producer.send_offsets({tp: 7}, "g")
    assert transport.broker.records(tp) == []
    await producer.commit()
    assert [r.value for r in transport.broker.records(tp)] == [b"v"]
    assert transport.broker.committed("g", tp) == 7
    assert await transport.partition_reader().end_offset(tp) == 2


async def test_a_plain_record_is_readable_at_once_but_not_past_an_open_transaction() -> None:
    transport = await _transport(partitions=1)
    tp = TP("t", 0)
    producer = await _producer(transport)
    await producer.begin()
    await producer.send(OutRecord("t", b"open"))
    transport.broker.publish(OutRecord("t", b"plain"))
    assert transport.broker.records(tp) == []  # behind the last stable offset
    await producer.abort()
    assert [(r.offset, r.value) for r in transport.broker.records(tp)] == [(1, b"plain")]


async def test_topics_are_refused_with_no_partitions() -> None:
    transport = await _transport()
    with pytest.raises(TopicSetupError):
        await transport.ensure_topics([TopicSpec("empty", 0)], 1)


# -- groups: rebalances, sessions, zombies ------------------------------------------------


async def test_a_member_that_does_not_poll_holds_up_the_rebalance() -> None:
    transport = await _transport()
    a_calls, b_calls = Recorder(), Recorder()
    a, b = _member(transport, a_calls), _member(transport, b_calls)
    await a.start()
    await a.poll(NOW, 10)
    await b.start()
    await b.poll(NOW, 10)
    assert b.assignment() == frozenset()  # a still holds everything
    assert a.assignment() == frozenset(TP("t", p) for p in range(4))
    await a.poll(NOW, 10)  # a gives up its partitions
    await b.poll(NOW, 10)
    await a.poll(NOW, 10)
    assert (_partitions(a), _partitions(b)) == ([0, 2], [1, 3])
    every = [TP("t", p) for p in range(4)]
    assert a_calls.calls == [
        ("revoked", []),
        ("assigned", every),
        ("revoked", every),
        ("assigned", [TP("t", 0), TP("t", 2)]),
    ]
    assert b_calls.calls == [("revoked", []), ("assigned", [TP("t", 1), TP("t", 3)])]


async def test_a_session_ends_by_the_loops_clock() -> None:
    everything = asyncio.Event()

    class Watching(Recorder):
        async def assigned(self, tps: Sequence[TP]) -> None:
            if len(tps) == 4:
                everything.set()

    transport = await _transport()
    survivor = _member(transport, Watching())
    zombie = _member(transport, session=timedelta(milliseconds=100))
    await survivor.start()
    await zombie.start()
    await asyncio.gather(survivor.poll(NOW, 10), zombie.poll(NOW, 10))
    await survivor.poll(NOW, 10)
    assert _partitions(zombie) == [1, 3]
    loop = asyncio.get_running_loop()
    started = loop.time()
    # One long poll: the zombie's session ends inside it, and the survivor takes
    # everything then, not at the poll's deadline.
    polling = asyncio.ensure_future(survivor.poll(timedelta(seconds=30), 10))
    async with asyncio.timeout(5):
        await everything.wait()
    assert loop.time() - started >= 0.1
    polling.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await polling
    assert _partitions(survivor) == [0, 1, 2, 3]
    assert _partitions(zombie) == [1, 3]  # the zombie does not know yet


async def test_an_expired_member_gives_up_its_partitions_and_rejoins() -> None:
    transport = await _transport()
    calls = Recorder()
    survivor, zombie = _member(transport), _member(transport, calls)
    await survivor.start()
    await zombie.start()
    await asyncio.gather(survivor.poll(NOW, 10), zombie.poll(NOW, 10))
    await survivor.poll(NOW, 10)
    old_id = zombie.member_id
    assert old_id is not None
    transport.broker.expire("g", old_id)
    await survivor.poll(NOW, 10)
    assert len(survivor.assignment()) == 4
    await zombie.poll(NOW, 10)  # finds out: revokes, rejoins as a new member
    assert zombie.member_id not in (None, old_id)
    assert calls.calls[-1] == ("revoked", [TP("t", 1), TP("t", 3)])
    await survivor.poll(NOW, 10)
    await zombie.poll(NOW, 10)
    assert (_partitions(survivor), _partitions(zombie)) == ([0, 2], [1, 3])


async def test_a_failing_listener_is_logged_and_the_group_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(Recorder):
        async def assigned(self, tps: Sequence[TP]) -> None:
            raise ValueError("listener bug")

    transport = await _transport()
    member = _member(transport, Failing())
    await member.start()
    transport.broker.publish(OutRecord("t", b"v", partition=0))
    with caplog.at_level(logging.ERROR):
        polled = await member.poll(NOW, 10)
    assert [r.value for r in polled[TP("t", 0)]] == [b"v"]
    assert "listener of group g failed" in caplog.text


async def test_poll_returns_at_most_max_records_and_serves_every_partition() -> None:
    transport = await _transport(partitions=2)
    for _ in range(3):
        for p in range(2):
            transport.broker.publish(OutRecord("t", b"%d" % p, partition=p))
    member = _member(transport)
    await member.start()
    batches = [await member.poll(NOW, 2) for _ in range(3)]
    assert all(sum(map(len, batch.values())) == 2 for batch in batches)
    got: list[Consumed] = [r for batch in batches for rs in batch.values() for r in rs]
    assert sorted((r.partition, r.offset) for r in got) == [
        (p, o) for p in range(2) for o in range(3)
    ]


async def test_a_topic_created_later_is_assigned() -> None:
    transport = await _transport()
    member = transport.group_consumer(
        "g", ["later"], Recorder(), session_timeout=SESSION, fetch_wait=NOW
    )
    await member.start()
    assert await member.poll(NOW, 10) == {}
    assert member.assignment() == frozenset()
    await transport.ensure_topics([TopicSpec("later", 1)], 1)
    await member.poll(NOW, 10)
    assert member.assignment() == {TP("later", 0)}


# -- transactional ids and faults ---------------------------------------------------------


async def test_a_commit_in_doubt_may_have_been_applied() -> None:
    transport = await _transport(partitions=1)
    tp = TP("t", 0)
    producer = await _producer(transport)
    transport.broker.fail_next_commit("p", applied=True)
    await producer.begin()
    await producer.send(OutRecord("t", b"applied"))
    await producer.send_offsets({tp: 1}, "g")
    with pytest.raises(InDoubt):
        await producer.commit()
    assert [r.value for r in transport.broker.records(tp)] == [b"applied"]
    assert transport.broker.committed("g", tp) == 1


async def test_a_lost_commit_leaves_the_transaction_open_until_the_next_producer() -> None:
    transport = await _transport(partitions=1)
    tp = TP("t", 0)
    reader = transport.partition_reader()
    producer = await _producer(transport)
    transport.broker.fail_next_commit("p", applied=False)
    await producer.begin()
    await producer.send(OutRecord("t", b"lost"))
    await producer.send_offsets({tp: 1}, "g")
    with pytest.raises(InDoubt):
        await producer.commit()
    assert await reader.end_offset(tp) == 0  # still open: nothing past it is readable
    await producer.abandon()
    await _producer(transport)  # its successor aborts it
    assert await reader.end_offset(tp) == 2
    assert transport.broker.records(tp) == []
    assert transport.broker.committed("g", tp) is None


async def test_an_injected_failure_does_nothing() -> None:
    transport = await _transport(partitions=1)
    producer = await _producer(transport)
    transport.broker.fail_next("p", "send", InDoubt("injected"))
    await producer.begin()
    with pytest.raises(InDoubt, match="injected"):
        await producer.send(OutRecord("t", b"v"))
    assert transport.broker.log(TP("t", 0)).high_watermark == 0
    assert (await (await producer.send(OutRecord("t", b"w")))).offset == 0  # once only


async def test_a_transaction_that_times_out_is_aborted_and_fences_its_producer() -> None:
    transport = await _transport(partitions=1)
    producer = await _producer(transport)
    await producer.begin()
    await producer.send(OutRecord("t", b"v"))
    transport.broker.time_out_transaction("p")
    assert await transport.partition_reader().end_offset(TP("t", 0)) == 2
    with pytest.raises(FencedError):
        await producer.commit()


async def test_a_reader_waits_for_an_open_transaction() -> None:
    transport = await _transport(partitions=1)
    tp = TP("t", 0)
    producer = await _producer(transport)
    await producer.begin()
    await producer.send(OutRecord("t", b"v"))
    reader = transport.partition_reader()

    async def read() -> list[tuple[list[Consumed], int]]:
        return [s async for s in reader.read(tp, 0, 2, 10)]

    reading = asyncio.ensure_future(read())
    done, _ = await asyncio.wait([reading], timeout=0.05)
    assert not done  # nothing readable while the transaction is open
    await producer.commit()
    async with asyncio.timeout(5):
        slices = await reading
    assert [([r.value for r in rs], after) for rs, after in slices] == [([b"v"], 2)]
