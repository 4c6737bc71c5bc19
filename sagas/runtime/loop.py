"""The engine's consuming loop: one group consumer, one task per unit.

The consumer (``read_committed``, co-partitioned assignment: `sagas.runtime.partitioning`)
fetches for every owned unit and hands each unit its records (`sagas.runtime.units.Unit`);
each unit decides and commits on its own, so a unit never waits for another's
transaction, and a unit's next batch is fetched while it commits. A unit holding more
than ``MAX_BACKLOG`` fetched records is paused until it drains.

Rebalances: the listener only records what changed. A revocation waits for the units'
batches in flight (their transactions end first), then releases them; an assignment
creates the new units, paused, and their tasks take them while the loop keeps polling,
so heartbeats go on however long a changelog catch-up takes (aiokafka sends no
heartbeat while its listener runs).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Sequence
from datetime import timedelta

from sagas.runtime.errors import RuntimeFailure
from sagas.runtime.transport.base import GroupConsumer
from sagas.runtime.transport.records import TP
from sagas.runtime.units import Delivery, Ownership, Unit, UnitConfig

log = logging.getLogger(__name__)

DEFAULT_COMMIT_TIMEOUT = timedelta(seconds=15)
"""How long one transaction (begin, sends, offsets, commit) may take before its outcome
is treated as unknown; aiokafka itself retries an unanswered commit forever."""

DEFAULT_IDLE_TICK = timedelta(milliseconds=100)
"""How long an idle unit waits before it looks for due timers again."""

MAX_BACKLOG = 2000
"""Fetched records a unit may hold before its partitions are paused."""


class EngineLoop:
    """Consumes ``topics`` as a member of ``config.group_id`` until `stop`.

    Args:
        config: what every unit shares (transport, worker, group, timing).
        topics: every topic the units read (inboxes and domain event topics).
        session_timeout: of the group membership.
    """

    def __init__(
        self,
        config: UnitConfig,
        topics: Sequence[str],
        session_timeout: timedelta,
    ) -> None:
        self._c = config
        self._topics = list(topics)
        self._session = session_timeout
        self.units: dict[int, Unit] = {}
        self._stopping = asyncio.Event()
        self.ready = asyncio.Event()
        """Set once every assigned unit is owned (cleared when a rebalance starts)."""
        self._consumer: GroupConsumer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._revoking: set[int] = set()
        self._released_doubts: Counter[str] = Counter()

    # -- status ---------------------------------------------------------------------

    @property
    def owned(self) -> list[int]:
        """The partition numbers of the units owned now."""
        return sorted(k for k, u in self.units.items() if u.state is Ownership.OWNED)

    @property
    def consumer(self) -> GroupConsumer | None:
        return self._consumer

    @property
    def delivery(self) -> Delivery:
        """How the units write their batches."""
        return self._c.delivery

    @property
    def doubts(self) -> Counter[str]:
        """How in-doubt transactions turned out, over every unit this loop had."""
        total = Counter(self._released_doubts)
        for unit in self.units.values():
            total.update(unit.doubts)
        return total

    @property
    def in_doubt(self) -> list[int]:
        """Units whose last transaction's outcome is not known yet."""
        return sorted(k for k, u in self.units.items() if u.state is Ownership.IN_DOUBT)

    @property
    def batches_committed(self) -> int:
        return sum(u.batches for u in self.units.values())

    def stop(self) -> None:
        """Ask `run` to return after the batches in flight; idempotent."""
        self._stopping.set()

    # -- the loop -------------------------------------------------------------------

    async def run(self) -> None:
        """Consume until `stop`; always leaves the consumer and every producer closed.

        Raises:
            GroupMismatch: from the consumer's poll, when the group mixes engines of
                different saga sets; not handled here, the process stops with it (a
                member told to stand by just gets no units).
        """
        consumer = self._c.transport.group_consumer(
            self._c.group_id,
            self._topics,
            self,
            session_timeout=self._session,
            fetch_wait=self._c.idle_tick,
        )
        self._consumer = consumer
        await consumer.start()
        try:
            while not self._stopping.is_set():
                data = await consumer.poll(self._c.idle_tick, self._c.max_batch)
                for tp, records in data.items():
                    unit = self.units.get(tp.partition)
                    if unit is not None:
                        unit.feed(tp, records)
                self._flow(consumer)
                self._check_tasks()
                if self.units and all(u.state is Ownership.OWNED for u in self.units.values()):
                    self.ready.set()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling() == 0:
                # Not our cancellation: a client's internal task leaked its own. Ending
                # "cancelled" would be ignored by the engine's TaskGroup and leave a
                # process that runs but consumes nothing; fail loudly instead.
                raise RuntimeFailure(
                    "the consuming loop was cancelled from inside a Kafka client"
                ) from None
            raise
        finally:
            await self._release(list(self.units))
            await consumer.stop()
            self._consumer = None

    def _flow(self, consumer: GroupConsumer) -> None:
        """Pause units that hold too much, resume those that drained."""
        for unit in self.units.values():
            if unit.state is not Ownership.OWNED:
                continue
            tps = sorted(unit.tps)
            if unit.backlog > MAX_BACKLOG:
                consumer.pause(tps)
            elif unit.backlog < MAX_BACKLOG // 2:
                consumer.resume(tps)

    def _check_tasks(self) -> None:
        """A unit task that died of an error takes the loop down with it (loudly)."""
        for task in [t for t in self._tasks if t.done()]:
            self._tasks.discard(task)
            if not task.cancelled() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]  # checked not None just above

    # -- Rebalance listener -----------------------------------------------------------

    async def revoked(self, tps: Sequence[TP]) -> None:
        """Finish the batches in flight of the units losing partitions, then release them."""
        self.ready.clear()
        gone = sorted({tp.partition for tp in tps if tp.partition in self.units})
        # Eager rebalancing revokes everything, then gives most of it back: a unit is
        # only quiesced here; `assigned` releases the ones not given back.
        await asyncio.gather(*(self.units[k].suspend() for k in gone))
        self._revoking.update(gone)

    async def assigned(self, tps: Sequence[TP]) -> None:
        """Create the new units (taken by their own tasks), release the ones lost."""
        by_unit: dict[int, list[TP]] = {}
        for tp in tps:
            by_unit.setdefault(tp.partition, []).append(tp)
        lost = [k for k in self._revoking if k not in by_unit]
        self._revoking.clear()
        await self._release(lost)
        consumer = self._consumer
        assert consumer is not None
        for k, parts in sorted(by_unit.items()):
            unit = self.units.get(k)
            if unit is None:
                unit = Unit(k, self._c, consumer)
                unit.tps = set(parts)
                consumer.pause(sorted(parts))
                self.units[k] = unit
                task = asyncio.create_task(unit.run(), name=f"unit-{k}")
                unit.task = task
                self._tasks.add(task)
                continue
            unit.add([tp for tp in parts if tp not in unit.tps])
            unit.reassigned()

    async def _release(self, ks: Sequence[int]) -> None:
        units = [self.units.pop(k) for k in ks if k in self.units]
        await asyncio.gather(*(u.release() for u in units))
        for unit in units:
            self._released_doubts.update(unit.doubts)
            if unit.task is not None:
                self._tasks.discard(unit.task)
