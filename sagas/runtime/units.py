"""One unit: partition ``k`` of every topic the engine consumes, owned by one process.

A unit has one explicit ownership state (`sagas.runtime.ownership`: the states, the
transitions allowed, and when each is made) and one task that drives it.

*Taking* starts the unit's transactional producers (their ids are the unit's, so a
previous owner's open transaction is aborted and its producers fenced before anything
is read), catches the store up from the changelogs (`UnitWorker.take`), and rewinds
every topic partition of the unit to the group's committed offset: records fetched
before are dropped, so nothing is decided twice by one owner.

While OWNED, the task decides what was fetched for the unit (up to a batch), commits
everything the batch produced together with its consumed offsets in one transaction,
and only then lets the worker update its store and caches. A unit never waits for
another unit.

With ``max_in_flight`` 2, a pipeline of two transactions: while batch N commits, the task
decides batch N+1 and begins its transaction (its records and offsets are sent), and
only N+1's commit waits for N's (and for the worker's store update of N). Transactions
of a unit therefore commit in the order they were decided, so the group's offsets only
move forward. Batch N+1 is decided on state that is not all stored yet, so it leaves
alone what N touched: the worker is told N's ``touched`` keys (its saga instances) and
defers every record concerning one of them, with every later record of that record's
partition (offsets stay a prefix), to a batch after N committed. If N fails (fenced or
in doubt), N+1 is never committed: the unit is lost as before, and the next owner's
initialisation of the transactional ids aborts N+1. Timers (`UnitWorker.tick`), a retry
after a failed decision and a rewind run only with nothing in flight.

Transactions of one unit commit one after the other, each on the next of the unit's
``PRODUCERS`` producers. A transaction begun on the producer that just committed is
refused (CONCURRENT_TRANSACTIONS, and on brokers that verify transactional partitions
NOT_ENOUGH_REPLICAS) until the broker has written the previous commit's markers, which
cost a retry of 20 ms or more each time; another producer has no such wait. Fencing
stays whole: a new owner initialises every one of the unit's transactional ids.

With ``delivery`` IDEMPOTENT (`Delivery`) a batch is not a transaction: the unit has one
idempotent producer and nothing fences an earlier owner. A batch's outputs (commands,
events, forwards, dead letters) are written first; once all are acknowledged, its state
(changelog and history records); once those are, the consumed offsets are committed by
the group consumer. A crash at any point leaves either the inputs unconsumed and their
state unwritten (decided again: the same messages with the same ids, which their
readers drop as duplicates) or the state written with its outputs (an input read again
is found in the instance's seen ids and ignored). See docs/guarantees.md for what this
mode does not promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Coroutine, Hashable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol, TypeVar, cast

from sagas.runtime import writes
from sagas.runtime.errors import FencedError, InDoubt, NotAssigned, TransportError
from sagas.runtime.ownership import Ownership as Ownership  # re-exported: the loop reads it
from sagas.runtime.ownership import UnitState
from sagas.runtime.replay import Replay
from sagas.runtime.transport.base import (
    GroupConsumer,
    Producer,
    TransactionalProducer,
    Transport,
)
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord

log = logging.getLogger(__name__)

_T = TypeVar("_T")

PRODUCERS = 3
"""Transactional producers per unit, used in turn (see the module docstring). Part of
the transactional ids: every engine of a group must use the same number."""

RETRY_TAKE = timedelta(seconds=1)
"""Pause before taking a unit again after taking it failed."""

RETRY_BATCH = timedelta(milliseconds=500)
"""Pause before a batch a dependency could not serve (the schema registry) is retried."""


class Delivery(StrEnum):
    """How a unit's batches reach Kafka (see the module docstring)."""

    TRANSACTIONAL = "transactional"
    """One Kafka transaction per batch, with its consumed offsets; earlier owners fenced."""
    IDEMPOTENT = "idempotent"
    """Outputs, then state, then offsets, each acknowledged before the next; no fencing."""


@dataclass
class Decided:
    """What the worker decided for one batch (or tick) of a unit.

    Attributes:
        outgoing: every record to produce in the batch's transaction.
        retry: a dependency (the schema registry) could not serve the batch: nothing is
            committed, the batch is decided again after a pause.
        context: the worker's own, handed back to `UnitWorker.committed`.
    """

    outgoing: list[OutRecord] = field(default_factory=list)
    outputs: int | None = None
    """How many of ``outgoing``, from the first, are outputs (what the decisions send);
    the rest is state (changelog and history records). None: all are outputs."""
    retry: bool = False
    context: object = None
    deferred: list[Consumed] = field(default_factory=list)
    """Records of the batch not decided (they concern something ``busy``), in order; for
    each partition they are a suffix of the batch's records from that partition."""
    touched: frozenset[Hashable] = frozenset()
    """What the decisions read and changed (the worker's own keys): while this batch is
    in flight, the next batch is decided with these ``busy``."""


class UnitWorker(Protocol):
    """The decisions of a unit; every method may run for several units at once, and
    calls for one unit never overlap."""

    async def take(self, k: int) -> None:
        """Make the store agree with the changelogs of partition ``k`` (catch-up)."""

    def give_up(self, k: int) -> None:
        """Forget what is cached of partition ``k``."""

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        """Decide on ``records``; bad input is dead-lettered, never raised. A record
        concerning anything in ``busy`` (touched by a batch still committing) is deferred
        with every later record of its partition (`Decided.deferred`)."""

    def dead_letter(self, k: int, record: Consumed, error: BaseException) -> Decided:
        """A batch moving ``record``, which made `decide` raise, to a dead-letter topic."""

    async def tick(self, k: int) -> Decided | None:
        """Work not driven by input (due timers, expired held messages), if any is due."""

    async def committed(self, k: int, decided: Decided, delivered: Sequence[Delivered]) -> None:
        """The transaction of ``decided`` committed; ``delivered`` is aligned with its
        outgoing records. Returns once the store has the changes."""


@dataclass(frozen=True)
class UnitConfig:
    """What every unit of a loop shares."""

    transport: Transport
    worker: UnitWorker
    group_id: str
    transactional_prefix: str
    max_batch: int
    commit_timeout: timedelta
    heartbeat: timedelta
    idle_tick: timedelta
    max_in_flight: int = 1
    """Transactions a unit may have open at once (see the module docstring); 1: none
    is decided before the previous one committed."""
    delivery: Delivery = Delivery.TRANSACTIONAL


class Unit:
    """Partition ``k`` of the loop's topics: its state, producers, fetched records, task."""

    def __init__(self, k: int, config: UnitConfig, consumer: GroupConsumer) -> None:
        self.k = k
        self._ownership = UnitState(k)  # every change of state goes through its table
        self.tps: set[TP] = set()
        self._c = config
        self._consumer = consumer
        self._producers: list[TransactionalProducer] = []
        self._plain: Producer | None = None  # Delivery.IDEMPOTENT's
        self._turn = 0
        self._pending: deque[Consumed] = deque()
        self._next: dict[TP, int] = {}
        self._wake = asyncio.Event()
        self._stop = False
        self._busy = asyncio.Lock()  # held while a batch is decided (and sent on its way)
        self._in_flight: deque[_InFlight] = deque()  # committing, oldest first
        self._epoch = 0  # bumped when the unit is lost: in-flight work of before is stale
        self._next_tick = 0.0
        self._retry_at = 0.0
        self._confirm_at: float | None = None  # FENCED: when to ask the group (None: never)
        self._rewind: set[TP] = set()
        self._given_back = 0  # rebalances that gave the unit back (`reassigned`)
        self._replay = Replay()  # IDEMPOTENT delivery: timers wait for it
        self._committed: dict[TP, int] = {}  # the group's offsets, as last committed here
        self._suspended = False
        self._doubt: dict[TP, int] | None = None
        self.batches = 0
        self.doubts: Counter[str] = Counter()
        """How in-doubt transactions turned out: committed, not_committed, unknown (a
        tick's: no offsets to tell), handed_over (revoked first: the next owner's
        initialisation settles it)."""
        self.task: asyncio.Task[None] | None = None

    # -- called by the loop ---------------------------------------------------------

    @property
    def state(self) -> Ownership:
        """Where the unit stands; it changes only along `sagas.runtime.ownership`'s table."""
        return self._ownership.current

    def transactional_id(self, i: int) -> str:
        return f"{self._c.transactional_prefix}.{self._c.group_id}.{self.k}.{i}"

    def feed(self, tp: TP, records: Sequence[Consumed]) -> None:
        """Records fetched for one of the unit's partitions (stale ones are dropped)."""
        if self.state is not Ownership.OWNED or tp in self._rewind:
            return
        floor = self._next.get(tp)
        if floor is None:
            return
        fresh = [r for r in records if r.offset >= floor]
        if fresh:
            self._next[tp] = fresh[-1].offset + 1
            self._pending.extend(fresh)
            self._wake.set()

    @property
    def backlog(self) -> int:
        return len(self._pending)

    def add(self, tps: Sequence[TP]) -> None:
        """More of partition ``k`` was assigned: rewound before it is read."""
        new = set(tps) - self.tps
        self.tps |= new
        self._rewind |= new
        self._replay.begin()
        self._consumer.pause(sorted(new))
        self._wake.set()

    async def suspend(self) -> None:
        """Decide nothing more until `reassigned`, and wait for the batch in flight (a
        revocation must not cut a transaction)."""
        self._suspended = True
        async with self._busy:
            await self._drain()

    def reassigned(self) -> None:
        """Given back after a rebalance: what was fetched and not decided is dropped and
        every partition rewound. With transactions, a unit another process owned
        meanwhile finds out at its next commit (fenced) and is taken again once the group
        confirms this process as its owner."""
        self._suspended = False
        self._confirm_at = None
        self._pending.clear()
        # The new assignment resumed every partition (aiokafka's does): paused again
        # until rewound, so nothing is fetched that would only be dropped.
        self._consumer.pause(sorted(self.tps))
        self._rewind |= self.tps
        self._given_back += 1
        self._replay.begin()
        if self.state is Ownership.FENCED or (
            self._c.delivery is Delivery.IDEMPOTENT and self.state is not Ownership.TAKING
        ):
            # Without transactions nothing tells this unit whether another process
            # owned it meanwhile (a paused member is dropped, and given units again
            # when it rejoins): it is taken again, so the store catches up with
            # whatever was decided elsewhere. One being taken already stays TAKING.
            self._ownership.move_to(Ownership.TAKING, "given back after a rebalance")
        self._wake.set()

    async def release(self) -> None:
        """Stop the task and close the producers (the unit is revoked)."""
        if self._doubt is not None:
            self.doubts["handed_over"] += 1
            log.warning("unit %d: revoked while in doubt; its next owner settles it", self.k)
            self._doubt = None
        self._stop = True
        self._wake.set()
        if self.task is not None:
            await asyncio.wait({self.task})
        self._ownership.move_to(Ownership.RELEASED, "revoked")
        await self._close_producers(abandon=False)
        self._c.worker.give_up(self.k)

    # -- the task -------------------------------------------------------------------

    async def run(self) -> None:
        """Drive the unit until it is released."""
        try:
            await self._drive()
        finally:
            await self._drain()

    async def _drive(self) -> None:
        while not self._stop:
            if self.state is not Ownership.OWNED:
                # Whatever was in flight belongs to the ownership that was lost: let it
                # wind down (its producers are abandoned) before the unit is taken again.
                await self._drain()
            if self.state is Ownership.TAKING:
                await self._take()
            elif self.state is Ownership.OWNED:
                await self._step()
            elif self.state is Ownership.IN_DOUBT:  # until the pause ends
                await self._wait(self._retry_at - time.monotonic())
                # Given back meanwhile (idempotent delivery), it is TAKING already.
                if self.state is Ownership.IN_DOUBT and time.monotonic() >= self._retry_at:
                    self._ownership.move_to(Ownership.TAKING, "the pause after the doubt is over")
            elif self._confirm_at is not None and not self._suspended:  # FENCED
                await self._wait(self._confirm_at - time.monotonic())
                if self._fenced_still() and time.monotonic() >= self._confirm_at:
                    self._confirm_at = None
                    if await self._owner_confirmed():
                        self._ownership.move_to(
                            Ownership.TAKING, "the group confirms this process as the owner"
                        )
            else:  # FENCED: until the group gives it back (`reassigned`) or revokes it
                self._wake.clear()
                await self._wake.wait()

    def _fenced_still(self) -> bool:
        return self.state is Ownership.FENCED and not self._suspended and not self._stop

    async def _owner_confirmed(self) -> bool:
        """FENCED: whether the group counts this process the unit's owner, asked by
        committing the group's offsets of the unit's partitions again, unchanged."""
        try:
            offsets = {tp: await self._consumer.committed(tp) for tp in sorted(self.tps)}
            if not offsets or not self._fenced_still():
                return False
            await self._consumer.commit(offsets)
        except (NotAssigned, TransportError) as exc:
            log.warning(
                "unit %d: fenced, and the group does not confirm this process as its owner "
                "(%r): waiting for the group to give it back",
                self.k,
                exc,
            )
            return False
        if not self._fenced_still():
            return False
        log.warning(
            "unit %d: fenced, but the group confirms this process as its owner: taking it again",
            self.k,
        )
        return True

    async def _wait(self, seconds: float) -> None:
        self._wake.clear()
        if seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    async def _take(self) -> None:
        tps = sorted(self.tps)
        given_back = self._given_back
        self._consumer.pause(tps)
        self._pending.clear()
        try:
            bound = self._c.commit_timeout.total_seconds()
            if self._c.delivery is Delivery.TRANSACTIONAL or self._plain is None:
                await self._close_producers(abandon=False)
                async with asyncio.timeout(bound):
                    await self._start_producers()
            # Not bounded: a large changelog takes what it takes (heartbeats go on).
            await self._c.worker.take(self.k)
            # Bounded: a coordinator that does not answer must not hold the unit.
            async with asyncio.timeout(bound):
                for tp in tps:
                    await self._rewind_to_committed(tp)
            self._settled()
        except FencedError as exc:
            log.warning("unit %d: fenced while taking it (%r)", self.k, exc)
            await self._close_producers(abandon=True)
            self._ownership.move_to(Ownership.FENCED, "fenced while taking it")
            self._confirm_at = self._after_two_heartbeats()
            return
        except NotAssigned:
            return  # revoked meanwhile: the loop releases the unit
        except (TransportError, TimeoutError, OSError) as exc:
            log.warning("unit %d: taking it failed (%r); will retry", self.k, exc)
            await self._close_producers(abandon=True)
            await self._wait(RETRY_TAKE.total_seconds())
            return
        # Only what was rewound: a partition added meanwhile is rewound by the next step,
        # and so is every partition if the group gave the unit back meanwhile (the new
        # assignment may have resumed a partition already rewound here, and what was
        # fetched for it then was dropped: rewound again, it is fetched again).
        if self._given_back == given_back:
            self._rewind.difference_update(tps)
        self._next_tick = time.monotonic() + self._c.idle_tick.total_seconds()
        self._replay.begin()
        self._ownership.move_to(Ownership.OWNED, "taken")
        self._consumer.resume([tp for tp in tps if tp not in self._rewind])
        log.info("unit %d owned: %s", self.k, ", ".join(map(str, tps)))

    async def _start_producers(self) -> None:
        if self._c.delivery is Delivery.IDEMPOTENT:
            self._plain = self._c.transport.idempotent_producer(
                self.transactional_id(0), request_timeout=self._c.commit_timeout
            )
            await self._plain.start()
            return
        self._producers = [
            self._c.transport.transactional_producer(
                self.transactional_id(i), request_timeout=self._c.commit_timeout
            )
            for i in range(PRODUCERS)
        ]
        # start() initialises the ids: the previous owner's open transaction is aborted
        # and its producers fenced before anything is read. Concurrently: taking many
        # units after a rebalance costs one start, not the sum.
        await asyncio.gather(*(p.start() for p in self._producers))

    def _settled(self) -> None:
        """Say how the transaction found in doubt turned out, now that Kafka settled it."""
        doubt, self._doubt = self._doubt, None
        if doubt is None:
            return
        if not doubt:
            outcome, what = "unknown", "had no input; its changes, if any, came from the changelog"
        elif all(self._next[tp] >= offset for tp, offset in doubt.items() if tp in self._next):
            outcome, what = "committed", "committed"
        else:
            outcome, what = (
                "not_committed",
                "did not commit: deciding again from the group's offsets",
            )
        self.doubts[outcome] += 1
        log.warning("unit %d: the transaction found in doubt %s", self.k, what)

    async def _rewind_to_committed(self, tp: TP) -> None:
        committed = await self._consumer.committed(tp)
        self._consumer.seek(tp, committed)
        self._next[tp] = committed
        self._committed[tp] = committed

    async def _step(self) -> None:
        if self._rewind and not self._suspended:
            await self._drain()  # the committed offsets read below must be final
            for tp in sorted(self._rewind):
                try:
                    await self._rewind_to_committed(tp)
                except (TransportError, NotAssigned) as exc:
                    log.warning("unit %d: rewinding %s failed (%r)", self.k, tp, exc)
                    return
                # Out of the rewind set before it is resumed: what is fetched for it while
                # the next one is rewound is fed, not dropped (and never fetched again).
                self._rewind.discard(tp)
                self._consumer.resume([tp])
        if not self._pending or self._suspended:
            await self._wait(self._c.idle_tick.total_seconds())
        async with self._busy:
            if self._stop or self._suspended or self.state is not Ownership.OWNED:
                return
            if self._pending:
                await self._batch()
            now = time.monotonic()
            if (
                self.state is Ownership.OWNED
                and (not self._in_flight or now >= self._next_tick)
                and self._replayed()
            ):
                # Timers are read from the store, so nothing may be in flight; under a
                # steady load that costs a drain at most once an idle tick.
                self._next_tick = now + self._c.idle_tick.total_seconds()
                await self._drain()
                if self.state is not Ownership.OWNED:
                    return
                decided = await self._c.worker.tick(self.k)
                if decided is not None and decided.outgoing and await self._still_member():
                    await self._commit(decided, {})

    async def _still_member(self) -> bool:
        """Before timers decide, with IDEMPOTENT delivery: whether the group still counts
        this process a member owning the unit, asked by committing the unit's offsets
        again (unchanged; the group refuses a member it dropped). A process paused past
        its session would otherwise fire timers by its own clock for sagas another
        process now drives. It narrows that window, it does not close it: a pause right
        after the answer still lets the timers' messages out (docs/guarantees.md)."""
        if self._c.delivery is Delivery.TRANSACTIONAL or not self._committed:
            return True
        try:
            await self._consumer.commit(dict(self._committed))
        except (NotAssigned, TransportError) as exc:
            log.warning("unit %d: the group did not confirm it (%r); taking it again", self.k, exc)
            await self._lose(Ownership.IN_DOUBT, "the group did not confirm it", abandon=False)
            self._retry_at = self._after_two_heartbeats()
            return False
        return True

    def _replayed(self) -> bool:
        """Whether timers may fire: always with transactions; with IDEMPOTENT delivery
        once the replay after the unit was taken is over (`sagas.runtime.replay`)."""
        if self._c.delivery is Delivery.TRANSACTIONAL:
            return True
        if self._rewind:
            return False  # positions not final yet
        return self._replay.over(self.tps, self._next, self._consumer.lag, self._pending)

    async def _batch(self) -> None:
        while len(self._in_flight) >= self._c.max_in_flight:
            await self._settle_oldest()
        if self.state is not Ownership.OWNED:
            return
        batch: list[Consumed] = []
        while self._pending and len(batch) < self._c.max_batch:
            batch.append(self._pending.popleft())
        busy: frozenset[Hashable] = frozenset().union(*(f.touched for f in self._in_flight))
        try:
            decided = await self._c.worker.decide(self.k, batch, busy)
        except Exception as exc:  # a worker bug must not stop the unit
            log.exception("unit %d: deciding a batch failed; retrying record by record", self.k)
            await self._drain()
            if self.state is Ownership.OWNED:
                await self._isolate(batch, exc)
            return
        if decided.retry:
            self._again(batch)
            await self._wait(RETRY_BATCH.total_seconds())
            return
        if self.state is not Ownership.OWNED:
            return  # lost while deciding (a transaction in flight failed)
        if decided.deferred:
            self._again(decided.deferred)
            deferred = {(r.topic, r.partition, r.offset) for r in decided.deferred}
            batch = [r for r in batch if (r.topic, r.partition, r.offset) not in deferred]
            if not batch and not decided.outgoing:
                # All of it waits for a batch in flight: wait for the oldest to end.
                await self._settle_oldest()
                return
        self._start(decided, _offsets(batch))

    def _again(self, batch: Sequence[Consumed]) -> None:
        """Put ``batch`` back in front of what is pending, to be decided again."""
        self._pending.extendleft(reversed(batch))

    async def _isolate(self, batch: list[Consumed], first: Exception) -> None:
        """Decide ``batch`` record by record, nothing else in flight; dead-letter a record
        whose decision raises."""
        for i, record in enumerate(batch):
            try:
                decided = await self._c.worker.decide(self.k, [record])
            except Exception as exc:
                decided = self._c.worker.dead_letter(self.k, record, exc)
            if decided.retry:
                self._again(batch[i:])
                return
            if not await self._commit(decided, _offsets([record])):
                return

    async def _commit(self, decided: Decided, offsets: dict[TP, int]) -> bool:
        """Produce ``decided`` and ``offsets`` in one transaction after whatever is in
        flight; False if the unit was lost (fenced or in doubt)."""
        await self._drain()
        if self.state is not Ownership.OWNED:
            return False
        self._start(decided, offsets)
        return await self._settle_oldest()

    def _start(self, decided: Decided, offsets: dict[TP, int]) -> None:
        """Begin the transaction of ``decided`` behind the ones in flight."""
        previous = self._in_flight[-1].task if self._in_flight else None
        producer: TransactionalProducer | Producer
        if self._c.delivery is Delivery.IDEMPOTENT:
            assert self._plain is not None  # started when the unit was taken
            producer = self._plain
        else:
            producer = self._producers[self._turn % PRODUCERS]
            self._turn += 1
        task = asyncio.ensure_future(
            self._transaction(producer, decided, offsets, previous, self._epoch)
        )
        self._in_flight.append(_InFlight(task, decided.touched))

    async def _settle_oldest(self) -> bool:
        """Wait for the oldest transaction in flight; whether it committed."""
        oldest = self._in_flight[0]
        try:
            return await asyncio.shield(oldest.task)
        finally:
            if oldest.task.done() and self._in_flight and self._in_flight[0] is oldest:
                self._in_flight.popleft()

    async def _drain(self) -> None:
        """Wait until nothing is in flight."""
        while self._in_flight:
            await self._settle_oldest()

    async def _transaction(
        self,
        producer: TransactionalProducer | Producer,
        decided: Decided,
        offsets: dict[TP, int],
        previous: asyncio.Task[bool] | None,
        epoch: int,
    ) -> bool:
        """One batch's transaction: sent at once, committed only after ``previous``
        committed, then handed to the worker. Never raises (a failure loses the unit)."""
        sent: list[asyncio.Future[Delivered]] = []
        try:
            await self._bounded(self._send(producer, decided, offsets, sent))
            if previous is not None and not await previous:
                # The transaction before failed and the unit is lost: this one never
                # commits (the next owner's initialisation of its id aborts it).
                _retrieve(sent)
                return False
            delivered = await self._bounded(self._end(producer, decided, offsets, sent))
        except FencedError as exc:
            if await self._lost_before(sent, previous, epoch):
                return False
            # Another process initialised our ids: our writes are refused. Never
            # re-initialise at once: if this process is a zombie (dropped from the group
            # while busy) that would fence the rightful owner; ask the group first.
            log.warning("unit %d was fenced (%r): another process took it", self.k, exc)
            await self._lose(Ownership.FENCED, "a batch was fenced", abandon=True)
            self._confirm_at = self._after_two_heartbeats()
            return False
        except (InDoubt, TransportError, TimeoutError, NotAssigned) as exc:
            # NotAssigned: only without transactions (the group refused the offsets).
            if await self._lost_before(sent, previous, epoch):
                return False
            log.warning(
                "unit %d: batch on %s ended in doubt (%r): taking the unit again and "
                "reading what Kafka has",
                self.k,
                _name(producer),
                exc,
            )
            self._doubt = dict(offsets)
            await self._lose(Ownership.IN_DOUBT, "a batch ended in doubt", abandon=True)
            # Not at once: re-initialising it here could fence its rightful new owner.
            self._retry_at = self._after_two_heartbeats()
            return False
        if epoch != self._epoch:
            return False  # committed, but the unit was lost meanwhile: taking it catches up
        self.batches += 1
        self._committed.update(offsets)
        await self._c.worker.committed(self.k, decided, delivered)
        return True

    async def _lost_before(
        self,
        sent: list[asyncio.Future[Delivered]],
        previous: asyncio.Task[bool] | None,
        epoch: int,
    ) -> bool:
        """After this transaction failed: let the one before it end first (whichever way
        it goes); whether the unit was lost meanwhile (then this failure is not news)."""
        _retrieve(sent)
        if previous is not None:
            await asyncio.wait({previous})
        return epoch != self._epoch

    async def _send(
        self,
        producer: TransactionalProducer | Producer,
        decided: Decided,
        offsets: dict[TP, int],
        sent: list[asyncio.Future[Delivered]],
    ) -> None:
        if self._c.delivery is Delivery.IDEMPOTENT:
            outputs = decided.outgoing[: _outputs(decided)]
            await writes.send_outputs(cast(Producer, producer), outputs, sent)
        else:
            txn = cast(TransactionalProducer, producer)
            await writes.begin_transaction(txn, decided.outgoing, offsets, self._c.group_id, sent)

    async def _end(
        self,
        producer: TransactionalProducer | Producer,
        decided: Decided,
        offsets: dict[TP, int],
        sent: list[asyncio.Future[Delivered]],
    ) -> list[Delivered]:
        if self._c.delivery is Delivery.TRANSACTIONAL:
            return await writes.commit_transaction(cast(TransactionalProducer, producer), sent)
        state = decided.outgoing[_outputs(decided) :]
        plain = cast(Producer, producer)
        return await writes.send_state_then_offsets(plain, self._consumer, state, offsets, sent)

    async def _bounded(self, work: Coroutine[Any, Any, _T]) -> _T:
        """Run ``work`` within the commit timeout; TimeoutError when it outlasts it."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task}, timeout=self._c.commit_timeout.total_seconds())
            if not task.done():
                # A second look: a process paused past the deadline (SIGSTOP) finds its
                # answer (often: fenced) at once, rather than treating it as in doubt.
                await asyncio.wait({task}, timeout=1.0)
        finally:
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled():
            raise TimeoutError(f"the transaction outlasted {self._c.commit_timeout}")
        return task.result()

    def _after_two_heartbeats(self) -> float:
        """When a unit lost (in doubt, fenced, refused by the group) may be taken again or
        the group asked: if this process was paused past its session (a zombie), its own
        heartbeat finds out meanwhile and the group takes the unit away first, so it never
        fences the rightful new owner; two processes fencing each other would do so no
        more often than this."""
        return time.monotonic() + 2 * self._c.heartbeat.total_seconds()

    async def _lose(self, state: Ownership, why: str, *, abandon: bool) -> None:
        self._ownership.move_to(state, why)
        self._epoch += 1
        self._consumer.pause(sorted(self.tps))
        self._pending.clear()
        await self._close_producers(abandon=abandon)
        self._c.worker.give_up(self.k)

    async def _close_producers(self, *, abandon: bool) -> None:
        plain, self._plain = self._plain, None
        producers: list[TransactionalProducer | Producer] = [*self._producers]
        if plain is not None:
            producers.append(plain)
        self._producers = []
        for producer in producers:
            if abandon:
                await producer.abandon()
            else:
                await producer.stop()


@dataclass(frozen=True)
class _InFlight:
    """A transaction of the unit's pipeline: its task (True once committed and stored)
    and what its decisions touched."""

    task: asyncio.Task[bool]
    touched: frozenset[Hashable]


def _offsets(batch: Sequence[Consumed]) -> dict[TP, int]:
    found: dict[TP, int] = {}
    for record in batch:
        found[TP(record.topic, record.partition)] = record.offset + 1
    return found


def _outputs(decided: Decided) -> int:
    return len(decided.outgoing) if decided.outputs is None else decided.outputs


def _name(producer: TransactionalProducer | Producer) -> str:
    name = getattr(producer, "transactional_id", None) or getattr(producer, "name", "")
    return str(name)


def _retrieve(futures: Sequence[asyncio.Future[Delivered]]) -> None:
    """Look at the errors of sends given up on (else asyncio logs them as never retrieved)."""
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()
        else:
            future.cancel()
