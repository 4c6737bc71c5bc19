"""The engine's loop without a broker: units over the in-memory transport.

The same loop the engine runs (units, producer rotation, rebalances, in-doubt and
fenced units), driving a relay or a running sum, against `MemoryTransport`: every
record's effect exactly once, also when members come and go and when a commit's
outcome is unknown.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Hashable, Sequence
from collections.abc import Set as AbstractSet
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import pytest

from sagas.runtime.errors import GroupMismatch
from sagas.runtime.loop import EngineLoop
from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.base import Rebalance
from sagas.runtime.transport.memory import MemoryBroker, MemoryTransport
from sagas.runtime.transport.memory.consumer import MemoryGroupConsumer
from sagas.runtime.transport.memory.producer import MemoryTransactionalProducer
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord
from sagas.runtime.units import PRODUCERS, Decided, Ownership
from tests.loop_support import Relay, defer_busy, relay_loop

DEADLINE = 10.0


async def until(predicate: object, what: str) -> None:
    """Wait until ``predicate()`` is true (a condition with a deadline, never a fixed sleep)."""
    assert callable(predicate)
    async with asyncio.timeout(DEADLINE):
        while True:
            if predicate():
                return
            await asyncio.sleep(0.01)  # polling interval of the condition, for ``what``


def publish(broker: MemoryBroker, topic: str, values: Sequence[int], keys: int = 5) -> None:
    for i in values:
        broker.publish(OutRecord(topic, str(i).encode(), key=f"k{i % keys}".encode()))


def committed_values(broker: MemoryBroker, topic: str, partitions: int) -> list[bytes]:
    found: list[bytes] = []
    for p in range(partitions):
        found.extend(r.value or b"" for r in broker.records(TP(topic, p)))
    return found


@asynccontextmanager
async def running(loop: EngineLoop) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(loop.run())
    try:
        yield task
    finally:
        loop.stop()
        await asyncio.wait_for(task, DEADLINE)


async def topics_of(broker: MemoryBroker, *specs: tuple[str, int]) -> None:
    broker.create_topics([TopicSpec(name, n) for name, n in specs])


async def test_a_relay_copies_every_record_once() -> None:
    broker = MemoryBroker()
    await topics_of(broker, ("in", 3), ("out", 1))
    publish(broker, "in", range(300))
    relay = Relay("out")
    loop = relay_loop(MemoryTransport(broker), "g", ["in"], relay, "relay")
    async with running(loop):
        await until(lambda: relay.committed_records == 300, "300 records relayed")
        assert loop.owned == [0, 1, 2]
    assert sorted(committed_values(broker, "out", 1)) == sorted(str(i).encode() for i in range(300))
    # Each unit used its producers in turn.
    assert {u for u in relay.taken} == {0, 1, 2}


async def test_a_second_member_takes_units_over_without_loss_or_duplicates() -> None:
    broker = MemoryBroker()
    await topics_of(broker, ("in", 4), ("out", 1))
    first_relay, second_relay = Relay("out"), Relay("out")
    first = relay_loop(MemoryTransport(broker), "g", ["in"], first_relay, "relay")
    second = relay_loop(MemoryTransport(broker), "g", ["in"], second_relay, "relay")
    async with running(first):
        publish(broker, "in", range(200))
        await until(lambda: first_relay.committed_records == 200, "the first 200")
        async with running(second):
            await until(lambda: len(first.owned) == 2 and len(second.owned) == 2, "a 2/2 split")
            publish(broker, "in", range(200, 400))
            await until(
                lambda: first_relay.committed_records + second_relay.committed_records == 400,
                "all 400",
            )
    out = committed_values(broker, "out", 1)
    assert Counter(out) == Counter(str(i).encode() for i in range(400))


class SlowRelay(Relay):
    """A relay taking a few milliseconds a batch: records wait, fetched, at a rebalance."""

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        await asyncio.sleep(0.005)  # the batch's work
        return await super().decide(k, records, busy)


async def test_records_waiting_on_every_topic_of_a_unit_survive_a_rebalance() -> None:
    # A unit given back after a rebalance rewinds its topics one after the other; what
    # is fetched for a topic already rewound, while the next one is, is decided too.
    broker = MemoryBroker()
    await topics_of(broker, ("a", 2), ("b", 2), ("out", 1))
    first_relay, second_relay = SlowRelay("out"), SlowRelay("out")
    first = relay_loop(MemoryTransport(broker), "g", ["a", "b"], first_relay, "relay", max_batch=5)
    second = relay_loop(
        MemoryTransport(broker), "g", ["a", "b"], second_relay, "relay", max_batch=5
    )
    async with running(first):
        await until(lambda: first.owned == [0, 1], "both units owned")
        publish(broker, "a", range(100))
        publish(broker, "b", range(100, 200))
        # The second member joins while the first has records fetched and not decided.
        await until(lambda: first_relay.committed_records > 0, "deciding")
        async with running(second):
            await until(lambda: len(first.owned) == 1 and len(second.owned) == 1, "a 1/1 split")
            await until(
                lambda: first_relay.committed_records + second_relay.committed_records == 200,
                "all 200",
            )
    out = committed_values(broker, "out", 1)
    assert Counter(out) == Counter(str(i).encode() for i in range(200))


class Summer:
    """A running sum per key whose local state changes only after a commit, kept in a
    changelog and caught up from it when a unit is taken (the engine's pattern)."""

    def __init__(self, broker: MemoryBroker) -> None:
        self.broker = broker
        self.sums: dict[bytes, int] = defaultdict(int)
        self.taken = 0

    async def take(self, k: int) -> None:
        self.taken += 1
        for record in self.broker.records(TP("changelog", k)):
            assert record.key is not None
            self.sums[record.key] = int(record.value or b"0")

    def give_up(self, k: int) -> None:
        return None

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        sums = dict(self.sums)
        out: list[OutRecord] = []
        kept, deferred = defer_busy(records, busy)
        for r in kept:
            assert r.key is not None
            sums[r.key] = sums.get(r.key, 0) + int(r.value or b"0")
            out.append(OutRecord("out", f"{r.value!r}:{sums[r.key]}".encode(), key=r.key))
        changed = {r.key: sums[r.key] for r in kept if r.key is not None}
        out += [
            OutRecord("changelog", str(v).encode(), key=key, partition=k)
            for key, v in changed.items()
        ]
        return Decided(outgoing=out, context=changed, deferred=deferred, touched=frozenset(changed))

    def dead_letter(self, k: int, record: Consumed, error: BaseException) -> Decided:
        raise AssertionError(repr(error))

    async def tick(self, k: int) -> Decided | None:
        return None

    async def committed(self, k: int, decided: Decided, delivered: Sequence[Delivered]) -> None:
        assert isinstance(decided.context, dict)
        self.sums.update(decided.context)


async def _in_doubt(applied: bool, in_flight: int) -> tuple[EngineLoop, Summer, MemoryBroker]:
    broker = MemoryBroker()
    await topics_of(broker, ("in", 1), ("out", 1), ("changelog", 1))
    summer = Summer(broker)
    loop = relay_loop(
        MemoryTransport(broker),
        "g",
        ["in"],
        summer,
        "sum",
        session_timeout=timedelta(milliseconds=500),
        max_batch=5,
        max_in_flight=in_flight,
    )
    async with running(loop):
        publish(broker, "in", range(20))
        await until(lambda: sum(summer.sums.values()) == sum(range(20)), "the first 20")
        # The next commit's answer is lost: applied or not, the loop cannot tell.
        for i in range(PRODUCERS):
            broker.fail_next_commit(f"sum.g.0.{i}", applied=applied)
        publish(broker, "in", range(20, 40))
        await until(lambda: loop.doubts.total() >= 1, "the commit found in doubt")
        await until(lambda: loop.owned == [0], "the unit taken again")
        publish(broker, "in", range(40, 60))
        await until(lambda: sum(summer.sums.values()) == sum(range(60)), "all 60")
    return loop, summer, broker


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_a_commit_in_doubt_that_did_commit_is_not_decided_again(in_flight: int) -> None:
    loop, summer, broker = await _in_doubt(applied=True, in_flight=in_flight)
    # Every producer of the unit had its next commit's answer lost: each one in turn.
    assert set(loop.doubts) == {"committed"}, loop.doubts
    outputs = [r.value for r in broker.records(TP("out", 0))]
    assert len(outputs) == 60  # every input once
    assert summer.taken == 1 + loop.doubts.total()  # caught up again after each doubt


@pytest.mark.parametrize("in_flight", [1, 2])
async def test_a_commit_in_doubt_that_did_not_commit_is_decided_again(in_flight: int) -> None:
    loop, summer, broker = await _in_doubt(applied=False, in_flight=in_flight)
    assert set(loop.doubts) == {"not_committed"}, loop.doubts
    outputs = [r.value for r in broker.records(TP("out", 0))]
    assert len(outputs) == 60
    assert dict(summer.sums) == {
        f"k{k}".encode(): sum(i for i in range(60) if i % 5 == k) for k in range(5)
    }


async def test_a_fenced_unit_whose_owner_the_group_confirms_takes_it_back() -> None:
    # Another producer initialises the unit's transactional ids while the group still
    # counts this process the unit's owner (a zombie of the group taking the unit): the
    # batch in flight is refused and never commits; the unit waits, asks the group, and
    # is taken again, so every record is relayed once and the partition does not stand
    # still until some later rebalance.
    broker = MemoryBroker()
    await topics_of(broker, ("in", 1), ("out", 1))
    relay = Relay("out")
    loop = relay_loop(MemoryTransport(broker), "g", ["in"], relay, "relay")
    async with running(loop) as task:
        await until(lambda: loop.owned == [0], "the unit owned")
        for i in range(PRODUCERS):
            broker.init_producer(f"relay.g.0.{i}")
        publish(broker, "in", range(5))
        await until(lambda: loop.units[0].state is Ownership.FENCED, "the fence noticed")
        assert not task.done()  # a fenced unit does not bring the process down
        assert relay.committed_records == 0
        assert committed_values(broker, "out", 1) == []
        await until(lambda: relay.committed_records == 5, "the 5 records relayed after all")
        assert loop.units[0].state is Ownership.OWNED
    assert sorted(committed_values(broker, "out", 1)) == [str(i).encode() for i in range(5)]


async def test_a_unit_given_back_after_another_process_fenced_it_is_taken_again() -> None:
    # This process was away (paused past its session); another process owned the unit
    # meanwhile (it initialised the unit's transactional ids), and the group then gave
    # the unit back. The unit finds out at its next commit that it was fenced; the
    # group confirms it as the owner, and it is taken again.
    broker = MemoryBroker()
    await topics_of(broker, ("in", 1), ("out", 1))
    relay = Relay("out")
    loop = relay_loop(MemoryTransport(broker), "g", ["in"], relay, "relay")
    async with running(loop):
        await until(lambda: loop.owned == [0], "the unit owned")
        consumer = loop.consumer
        assert isinstance(consumer, MemoryGroupConsumer)
        first = consumer.member_id
        assert first is not None
        for i in range(PRODUCERS):
            broker.init_producer(f"relay.g.0.{i}")
        broker.expire("g", first)
        await until(
            lambda: consumer.member_id not in (None, first) and loop.owned == [0],
            "the unit given back to this process, a new member",
        )
        publish(broker, "in", range(5))
        await until(lambda: relay.committed_records == 5, "the 5 records relayed")
        assert loop.units[0].state is Ownership.OWNED
    assert sorted(committed_values(broker, "out", 1)) == [str(i).encode() for i in range(5)]


class _HeldConsumer(MemoryGroupConsumer):
    """A member whose answer for one partition's committed offset waits for the test
    (while it waits, the test rebalances the group), and which counts its polls."""

    def __init__(self, *args: Any, held: TP, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.held = held
        self.asked = asyncio.Event()
        self.answer = asyncio.Event()
        self.polls = 0

    async def committed(self, tp: TP) -> int:
        if tp == self.held and not self.answer.is_set():
            self.asked.set()
            await self.answer.wait()
        return await super().committed(tp)

    async def poll(self, wait: timedelta, max_records: int) -> dict[TP, list[Consumed]]:
        found = await super().poll(wait, max_records)
        self.polls += 1
        return found


class _HeldTransport(MemoryTransport):
    def __init__(self, broker: MemoryBroker, held: TP) -> None:
        super().__init__(broker)
        self.held = held
        self.consumer: _HeldConsumer | None = None

    def group_consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        listener: Rebalance,
        *,
        session_timeout: timedelta,
        fetch_wait: timedelta,
    ) -> MemoryGroupConsumer:
        self.consumer = _HeldConsumer(
            self.broker, group_id, topics, listener, session_timeout, held=self.held
        )
        return self.consumer


async def test_a_unit_given_back_while_it_is_being_taken_decides_every_record() -> None:
    # The group gives a unit back while it is being taken, after one of its partitions
    # was rewound and before the next was: the new assignment resumes every partition
    # (as aiokafka's does), and what is fetched before the unit is owned is dropped. The
    # unit must keep them paused, or rewind again once owned; else the records dropped
    # are never decided, and a later batch's offsets pass them (two sagas were lost so
    # in a chaos run).
    broker = MemoryBroker()
    await topics_of(broker, ("a", 1), ("b", 1), ("out", 1))
    transport = _HeldTransport(broker, TP("b", 0))
    relay = Relay("out")
    loop = relay_loop(transport, "g", ["a", "b"], relay, "relay")
    async with running(loop):
        await until(lambda: transport.consumer is not None, "the consumer made")
        consumer = transport.consumer
        assert consumer is not None
        await until(consumer.asked.is_set, "a[0] rewound, b[0] not yet")
        assert loop.owned == []
        first = consumer.member_id
        assert first is not None
        publish(broker, "a", range(5))
        broker.expire("g", first)
        await until(lambda: consumer.member_id not in (None, first), "the group rejoined")
        polls = consumer.polls
        # Two polls after the new assignment: a partition it resumed would be fetched.
        await until(lambda: consumer.polls >= polls + 2, "two polls since")
        assert loop.owned == []
        consumer.answer.set()
        await until(lambda: loop.owned == [0], "the unit owned")
        publish(broker, "a", range(5, 7))
        await until(lambda: broker.committed("g", TP("a", 0)) == 7, "a[0] consumed")
    assert sorted(committed_values(broker, "out", 1)) == sorted(str(i).encode() for i in range(7))


def _standby_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and r.getMessage().startswith("standing by in group g:")
    ]


async def test_a_narrower_loop_stands_by_once_warned_until_the_wider_one_leaves(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    broker = MemoryBroker()
    await topics_of(broker, ("in", 2), ("more", 2), ("out", 1))
    narrow_relay, wide_relay = Relay("out"), Relay("out")
    narrow = relay_loop(MemoryTransport(broker), "g", ["in"], narrow_relay, "relay")
    wide = relay_loop(MemoryTransport(broker), "g", ["in", "more"], wide_relay, "relay")
    async with running(narrow):
        await until(lambda: narrow.owned == [0, 1], "the narrower loop alone owns the units")
        async with running(wide):
            await until(lambda: wide.owned == [0, 1] and not narrow.units, "the wider owns all")
            publish(broker, "in", range(100))
            publish(broker, "more", range(100, 150))
            await until(lambda: wide_relay.committed_records == 150, "all 150 by the wider")
            # Many polls, one generation: one warning.
            assert _standby_warnings(caplog) == [
                "standing by in group g: another engine of the group runs more sagas (it "
                "also reads more); this one gets no units while such an engine is in the group"
            ]
        await until(lambda: narrow.owned == [0, 1], "the narrower loop takes its units back")
        publish(broker, "in", range(150, 200))
        await until(lambda: narrow_relay.committed_records == 50, "the last 50 by the narrower")
    assert len(_standby_warnings(caplog)) == 1
    out = committed_values(broker, "out", 1)
    assert Counter(out) == Counter(str(i).encode() for i in range(200))


async def test_loops_of_different_topics_in_one_group_stop_with_group_mismatch() -> None:
    broker = MemoryBroker()
    await topics_of(broker, ("a", 2), ("b", 2), ("out", 1))
    relay = Relay("out")
    first = relay_loop(MemoryTransport(broker), "g", ["a"], relay, "relay")
    second = relay_loop(MemoryTransport(broker), "g", ["b"], Relay("out"), "relay")
    first_task = asyncio.create_task(first.run())
    await until(lambda: first.owned == [0, 1], "the first loop owns the units")
    second_task = asyncio.create_task(second.run())
    done, _ = await asyncio.wait({first_task, second_task}, timeout=DEADLINE)
    assert done == {first_task, second_task}, "both loops stop"
    for task in (first_task, second_task):
        error = task.exception()
        assert isinstance(error, GroupMismatch), error
        assert str(error).startswith("engines of group g subscribe to different topics")
    # Its units released, its consumer closed.
    assert first.units == {}
    assert first.consumer is None
    assert set(relay.given_up) == {0, 1}


# -- the pipeline: the next batch decided while the previous one commits ---------------


class GatedProducer(MemoryTransactionalProducer):
    """A producer whose commits wait while ``gate`` is clear (a slow broker, on demand)."""

    def __init__(self, gate: asyncio.Event, *args: Any) -> None:
        super().__init__(*args)
        self._gate = gate

    async def commit(self) -> None:
        await self._gate.wait()
        await super().commit()


class GatedTransport(MemoryTransport):
    """A memory transport whose commits wait while ``gate`` is clear."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.gate = asyncio.Event()
        self.gate.set()

    def transactional_producer(
        self, transactional_id: str, *, request_timeout: timedelta
    ) -> GatedProducer:
        return GatedProducer(self.gate, self.broker, transactional_id, request_timeout)


class WatchedSummer(Summer):
    """A `Summer` that records what each batch was asked to leave alone and deferred."""

    def __init__(self, broker: MemoryBroker) -> None:
        super().__init__(broker)
        self.calls: list[tuple[frozenset[Hashable], list[bytes], list[bytes]]] = []

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        decided = await super().decide(k, records, busy)
        deferred = [r.value or b"" for r in decided.deferred]
        kept = [r.value or b"" for r in records if r not in decided.deferred]
        self.calls.append((frozenset(busy), kept, deferred))
        return decided


QUIET = timedelta(seconds=3)
"""An idle tick longer than these tests: a unit drains its pipeline to look for due
timers once an idle tick, which would stop the second batch from being decided while
the first commits."""


def _keyed(broker: MemoryBroker, *pairs: tuple[str, int]) -> None:
    for key, value in pairs:
        broker.publish(OutRecord("in", str(value).encode(), key=key.encode()))


def _sums(broker: MemoryBroker) -> dict[bytes, int]:
    """Per key, the last sum the relay wrote (``b"<value>:<sum>"`` records on ``out``)."""
    found: dict[bytes, int] = {}
    for r in broker.records(TP("out", 0)):
        assert r.key is not None
        assert r.value is not None
        found[r.key] = int(r.value.rsplit(b":", 1)[1])
    return found


async def _gated_sums(
    **options: Any,
) -> tuple[MemoryBroker, GatedTransport, WatchedSummer, EngineLoop]:
    """A loop summing the keys of one partition, in batches of 3, whose commits wait
    while ``transport.gate`` is clear; ``options`` go to `relay_loop`."""
    broker = MemoryBroker()
    await topics_of(broker, ("in", 1), ("out", 1), ("changelog", 1))
    transport = GatedTransport(broker)
    summer = WatchedSummer(broker)
    loop = relay_loop(transport, "g", ["in"], summer, "sum", max_batch=3, **options)
    return broker, transport, summer, loop


async def test_the_next_batch_is_decided_while_the_previous_one_commits() -> None:
    broker, transport, summer, loop = await _gated_sums(idle_tick=QUIET, max_in_flight=2)
    async with running(loop):
        await until(lambda: loop.owned == [0], "the unit owned")
        transport.gate.clear()  # commits wait from now on
        _keyed(broker, ("a", 1), ("b", 2), ("c", 3))
        await until(lambda: len(summer.calls) == 1, "the first batch decided")
        # Behind it: a key of its own, then one of the first batch, then another free key.
        _keyed(broker, ("d", 4), ("a", 10), ("e", 5))
        await until(lambda: len(summer.calls) == 2, "the second batch decided")
        busy, kept, deferred = summer.calls[1]
        assert busy == {b"a", b"b", b"c"}
        # "e" is free too, but comes after "a" in the partition: the offsets must stay a prefix.
        assert (kept, deferred) == ([b"4"], [b"10", b"5"])
        assert broker.records(TP("out", 0)) == []  # nothing commits while the gate is shut
        transport.gate.set()
        await until(lambda: summer.sums.get(b"e") == 5, "every record decided")
    assert _sums(broker) == {b"a": 11, b"b": 2, b"c": 3, b"d": 4, b"e": 5}
    # Committed in the order decided: the first batch, "d", then the deferred two.
    assert [r.value for r in broker.records(TP("out", 0))] == [
        b"b'1':1",
        b"b'2':2",
        b"b'3':3",
        b"b'4':4",
        b"b'10':11",
        b"b'5':5",
    ]
    assert broker.committed("g", TP("in", 0)) == 6


async def test_with_one_in_flight_nothing_is_decided_before_the_commit() -> None:
    broker, transport, summer, loop = await _gated_sums(max_in_flight=1)
    async with running(loop):
        await until(lambda: loop.owned == [0], "the unit owned")
        transport.gate.clear()
        _keyed(broker, ("a", 1), ("b", 2), ("c", 3))
        await until(lambda: len(summer.calls) == 1, "the first batch decided")
        _keyed(broker, ("d", 4))
        # A condition that must stay false: give the loop many turns to break it.
        for _ in range(50):
            await asyncio.sleep(0)
        assert len(summer.calls) == 1
        transport.gate.set()
        await until(lambda: summer.sums.get(b"d") == 4, "every record decided")
    assert all(not busy for busy, _, _ in summer.calls)


async def test_a_batch_behind_a_commit_in_doubt_never_commits() -> None:
    broker, transport, summer, loop = await _gated_sums(
        session_timeout=timedelta(seconds=1), idle_tick=QUIET, max_in_flight=2
    )
    async with running(loop):
        await until(lambda: loop.owned == [0], "the unit owned")
        transport.gate.clear()
        _keyed(broker, ("a", 1), ("b", 2), ("c", 3))
        await until(lambda: len(summer.calls) == 1, "the first batch decided")
        _keyed(broker, ("d", 4), ("e", 5))
        await until(lambda: len(summer.calls) == 2, "the second batch decided, behind it")
        # The first commit's answer is lost and it did not apply; the second batch,
        # already sent, must not commit its offsets past the first batch's records.
        for i in range(PRODUCERS):
            broker.fail_next_commit(f"sum.g.0.{i}", applied=False)
        transport.gate.set()
        await until(lambda: loop.doubts.total() >= 1, "the commit found in doubt")
        await until(lambda: summer.sums.get(b"e") == 5 and loop.owned == [0], "all decided")
    assert set(loop.doubts) == {"not_committed"}, loop.doubts
    values = [r.value or b"" for r in broker.records(TP("out", 0))]
    assert sorted(values) == sorted(f"b'{v}':{v}".encode() for v in range(1, 6))  # once each
    assert broker.committed("g", TP("in", 0)) == 5
