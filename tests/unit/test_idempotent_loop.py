"""The engine's loop with ``Delivery.IDEMPOTENT`` over the in-memory transport: no
transactions; a batch's outputs are written, then its state, then its offsets committed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from datetime import timedelta
from typing import Any

from sagas.runtime.errors import NotAssigned, TransportError
from sagas.runtime.loop import EngineLoop
from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.base import Producer, Rebalance
from sagas.runtime.transport.memory import MemoryBroker, MemoryTransport
from sagas.runtime.transport.memory.consumer import MemoryGroupConsumer
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord
from sagas.runtime.units import Decided, Delivery
from tests.loop_support import Relay, relay_loop
from tests.unit.test_engine_loop import committed_values, publish, running, until

IDEMPOTENT = Delivery.IDEMPOTENT


class StateRelay(Relay):
    """Copies every record to ``out`` (an output) and to ``state`` (its state record)."""

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        outputs = [OutRecord(self.out, r.value, key=r.key, partition=0) for r in records]
        state = [OutRecord("state", r.value, key=r.key, partition=0) for r in records]
        return Decided(outgoing=outputs + state, outputs=len(outputs), context=len(records))


class Journal:
    """What the transport was asked to do, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.fail_state_sends = 0
        self.refuse_commits = False
        self.refused = 0


class JournalProducer:
    def __init__(self, inner: Producer, journal: Journal) -> None:
        self.name = inner.name
        self._inner = inner
        self._journal = journal

    async def start(self) -> None:
        await self._inner.start()

    async def send(self, record: OutRecord) -> asyncio.Future[Delivered]:
        if record.topic == "state" and self._journal.fail_state_sends:
            self._journal.fail_state_sends -= 1
            raise TransportError("the broker did not answer (injected)")
        self._journal.events.append(("send", record.topic))
        sent = await self._inner.send(record)
        return asyncio.ensure_future(self._acknowledged(record.topic, sent))

    async def _acknowledged(self, topic: str, sent: asyncio.Future[Delivered]) -> Delivered:
        # The acknowledgement comes a few round trips later, as from a broker: a unit
        # that sent its state before its outputs were acknowledged would show here.
        for _ in range(3):
            await asyncio.sleep(0)
        delivered = await sent
        self._journal.events.append(("written", topic))
        return delivered

    async def stop(self) -> None:
        await self._inner.stop()

    async def abandon(self) -> None:
        await self._inner.abandon()


class JournalConsumer(MemoryGroupConsumer):
    journal: Journal

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        if self.journal.refuse_commits:
            self.journal.refused += 1
            raise NotAssigned("the group dropped this member (injected)")
        await super().commit(offsets)
        self.journal.events.append(("commit", ",".join(sorted(str(tp) for tp in offsets))))


class JournalTransport(MemoryTransport):
    def __init__(self, broker: MemoryBroker, journal: Journal) -> None:
        super().__init__(broker)
        self.journal = journal

    def idempotent_producer(self, name: str, *, request_timeout: timedelta) -> Any:
        inner = super().idempotent_producer(name, request_timeout=request_timeout)
        return JournalProducer(inner, self.journal)

    def transactional_producer(self, transactional_id: str, *, request_timeout: timedelta) -> Any:
        raise AssertionError("no transactions without them")

    def group_consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        listener: Rebalance,
        *,
        session_timeout: timedelta,
        fetch_wait: timedelta,
    ) -> JournalConsumer:
        made = JournalConsumer(self.broker, group_id, topics, listener, session_timeout)
        made.journal = self.journal
        return made


def topics(broker: MemoryBroker, partitions: int) -> None:
    broker.create_topics([TopicSpec("in", partitions), TopicSpec("out", 1), TopicSpec("state", 1)])


def journaled(
    relay: Relay, partitions: int, **options: Any
) -> tuple[MemoryBroker, Journal, EngineLoop]:
    """A broker with the test topics, and an idempotent loop of ``relay`` whose transport
    journals what it is asked to do."""
    broker = MemoryBroker()
    topics(broker, partitions)
    journal = Journal()
    transport = JournalTransport(broker, journal)
    loop = relay_loop(transport, "g", ["in"], relay, "r", delivery=IDEMPOTENT, **options)
    return broker, journal, loop


async def test_every_record_is_relayed_once_without_a_transaction() -> None:
    relay = StateRelay("out")
    broker, _, loop = journaled(relay, 3)
    publish(broker, "in", range(300))
    async with running(loop):
        await until(lambda: relay.committed_records == 300, "300 records relayed")
        await until(
            lambda: sum(broker.committed("g", TP("in", p)) or 0 for p in range(3)) == 300,
            "every offset committed",
        )
    expected = Counter(str(i).encode() for i in range(300))
    assert Counter(committed_values(broker, "out", 1)) == expected
    assert Counter(committed_values(broker, "state", 1)) == expected


async def test_the_state_follows_the_outputs_and_the_offsets_follow_the_state() -> None:
    relay = StateRelay("out")
    broker, journal, loop = journaled(relay, 1)
    async with running(loop):
        for round_ in range(3):
            publish(broker, "in", range(round_ * 10, round_ * 10 + 10))
            await until(lambda r=round_: relay.committed_records == (r + 1) * 10, "a round")
    events = journal.events
    commits = [i for i, e in enumerate(events) if e[0] == "commit"]
    assert commits  # offsets committed by the consumer, no transaction
    start = 0
    for end in commits:
        batch = events[start:end]
        state_sends = [i for i, e in enumerate(batch) if e == ("send", "state")]
        outputs_written = [i for i, e in enumerate(batch) if e == ("written", "out")]
        state_written = [i for i, e in enumerate(batch) if e == ("written", "state")]
        assert state_sends, batch
        assert outputs_written, batch
        assert state_written, batch
        # Every output acknowledged before the first state record is sent; every state
        # record acknowledged before the offsets are committed (`end`).
        assert max(outputs_written) < min(state_sends), batch
        assert len(state_written) == len(state_sends), batch
        start = end + 1


async def test_a_state_write_that_fails_decides_the_batch_again() -> None:
    relay = StateRelay("out")
    broker, journal, loop = journaled(relay, 1, session_timeout=timedelta(seconds=1))
    journal.fail_state_sends = 1
    publish(broker, "in", range(5))
    async with running(loop):
        await until(lambda: relay.committed_records == 5, "the batch decided again")
        await until(lambda: broker.committed("g", TP("in", 0)) == 5, "its offsets committed")
        [unit] = loop.units.values()
        assert unit.doubts["not_committed"] == 1
    # The outputs written before the failure are written again (their readers drop the
    # duplicates by id); the state once, and nothing is lost.
    values = [str(i).encode() for i in range(5)]
    assert Counter(committed_values(broker, "out", 1)) == Counter(values * 2)
    assert committed_values(broker, "state", 1) == values


class TickingRelay(StateRelay):
    """A `StateRelay` noting how many records were decided whenever timers are asked for."""

    def __init__(self, out: str) -> None:
        super().__init__(out)
        self.decided = 0
        self.ticks: list[int] = []

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        await asyncio.sleep(0.02)  # the batch's work: the replay outlasts an idle tick
        self.decided += len(records)
        return await super().decide(k, records, busy)

    async def tick(self, k: int) -> Decided | None:
        self.ticks.append(self.decided)
        return None


async def test_timers_wait_until_what_was_there_at_the_takeover_is_decided() -> None:
    # Records an earlier owner may have decided (outputs out, state not written) are
    # decided again before any timer fires, so a timer cannot decide otherwise.
    broker = MemoryBroker()
    topics(broker, 1)
    publish(broker, "in", range(50))
    relay = TickingRelay("out")
    loop = relay_loop(
        MemoryTransport(broker), "g", ["in"], relay, "r", delivery=IDEMPOTENT, max_batch=5
    )
    async with running(loop):
        await until(lambda: len(relay.ticks) >= 3, "timers asked for")
        publish(broker, "in", range(50, 60))
        await until(lambda: relay.committed_records == 60, "every record")
    assert relay.ticks[0] == 50, relay.ticks


async def test_a_unit_given_back_after_a_rebalance_is_taken_again() -> None:
    # Nothing fences a member that was dropped and rejoined, so a unit given back may
    # have been owned elsewhere meanwhile: its store must catch up before it decides.
    broker = MemoryBroker()
    topics(broker, 2)
    first_relay, second_relay = StateRelay("out"), StateRelay("out")
    first = relay_loop(MemoryTransport(broker), "g", ["in"], first_relay, "r", delivery=IDEMPOTENT)
    second = relay_loop(
        MemoryTransport(broker), "g", ["in"], second_relay, "r", delivery=IDEMPOTENT
    )
    async with running(first):
        await until(lambda: first.owned == [0, 1], "both units owned")
        assert sorted(first_relay.taken) == [0, 1]
        async with running(second):
            await until(lambda: len(first.owned) == 1 and len(second.owned) == 1, "a 1/1 split")
            [kept] = first.owned
            assert first_relay.taken.count(kept) == 2  # taken again, not only resumed
            publish(broker, "in", range(20))
            await until(
                lambda: first_relay.committed_records + second_relay.committed_records == 20,
                "every record",
            )
    values = [str(i).encode() for i in range(20)]
    assert Counter(committed_values(broker, "out", 1)) == Counter(values)


class TimerRelay(StateRelay):
    """A `StateRelay` with a timer that fires (writes ``timer`` to ``out``) once due."""

    def __init__(self, out: str) -> None:
        super().__init__(out)
        self.due = False

    async def tick(self, k: int) -> Decided | None:
        if not self.due:
            return None
        return Decided(outgoing=[OutRecord(self.out, b"timer", partition=0)], context="timer")

    async def committed(self, k: int, decided: Decided, delivered: Sequence[Delivered]) -> None:
        if decided.context == "timer":
            self.due = False
            return
        await super().committed(k, decided, delivered)


async def test_timers_fire_only_while_the_group_confirms_the_member() -> None:
    relay = TimerRelay("out")
    broker, journal, loop = journaled(relay, 1, session_timeout=timedelta(seconds=1))
    async with running(loop):
        await until(lambda: loop.owned == [0], "the unit owned")
        journal.refuse_commits = True  # as for a member the group dropped while paused
        relay.due = True
        await until(lambda: journal.refused >= 2, "the group asked, twice")
        assert committed_values(broker, "out", 1) == []  # no timer fired meanwhile
        journal.refuse_commits = False
        await until(lambda: not relay.due, "the timer fired once confirmed")
    assert committed_values(broker, "out", 1) == [b"timer"]
