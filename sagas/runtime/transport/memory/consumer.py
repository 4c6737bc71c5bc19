"""`MemoryGroupConsumer`: a member of a `MemoryBroker`'s consumer group."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import timedelta

from sagas.runtime.errors import NotAssigned
from sagas.runtime.transport.assignment import Heeding
from sagas.runtime.transport.base import Rebalance
from sagas.runtime.transport.memory.broker import MemoryBroker
from sagas.runtime.transport.records import TP, Consumed

log = logging.getLogger(__name__)


class MemoryGroupConsumer:
    """`GroupConsumer` on a `MemoryBroker` (``read_committed``, eager rebalances).

    Rebalances run inside `poll`, as aiokafka runs them beside its fetches: each member
    gives up its whole assignment (``revoked``), and takes its new one (``assigned``)
    once every member has given up theirs. Listener errors are logged and the rebalance
    goes on, as aiokafka does. A member whose last poll is older than its session
    timeout (by the loop's clock; `MemoryBroker.expire` ends it at once) is removed at
    the next poll of any member; when it polls again it finds out, gives up what it
    held and rejoins as a new member, like a Kafka consumer told it is unknown. A member
    told to stand by or that the group is mixed (`sagas.runtime.transport.assignment`)
    hears it from `poll`, as on Kafka.
    """

    def __init__(
        self,
        broker: MemoryBroker,
        group_id: str,
        topics: Sequence[str],
        listener: Rebalance,
        session_timeout: timedelta,
    ) -> None:
        self.group_id = group_id
        self._broker = broker
        self._topics = tuple(topics)
        self._listener = listener
        self._session_timeout = session_timeout
        self._member_id: str | None = None
        self._stopped = False
        self._generation = 0
        """The generation whose assignment this member took."""
        self._revoked_for = 0
        """The generation for which it last gave up its partitions."""
        self._assignment: frozenset[TP] = frozenset()
        self._positions: dict[TP, int] = {}
        self._paused: set[TP] = set()
        self._turn = 0
        self._heeding = Heeding(group_id)

    @property
    def member_id(self) -> str | None:
        """Its id in the group now (a new one after its session ended); None when out."""
        return self._member_id

    async def start(self) -> None:
        if self._stopped:
            raise RuntimeError(f"the consumer of group {self.group_id} was stopped")
        if self._member_id is None:
            self._member_id = self._broker.join(self.group_id, self._topics, self._session_timeout)

    async def stop(self) -> None:
        # Like aiokafka's stop: leaves the group without calling the listener.
        self._stopped = True
        member_id, self._member_id = self._member_id, None
        if member_id is not None:
            self._broker.leave(self.group_id, member_id)
        self._take(frozenset())

    async def poll(self, wait: timedelta, max_records: int) -> dict[TP, list[Consumed]]:
        if self._member_id is None:
            raise RuntimeError(f"the consumer of group {self.group_id} is not started")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait.total_seconds()
        try:
            while True:
                changed = self._broker.changed()
                # First the sessions that ended, this member's own included: a zombie
                # coming back finds itself out of the group.
                self._broker.expire_stale(self.group_id)
                self._mark(polling=True)
                await self._sync()
                self._heeding.heed()
                records = self._fetch(max_records) if self._settled() else {}
                if records:
                    return records
                now = loop.time()
                timeout = deadline - now
                if timeout <= 0:
                    return {}
                expiry = self._broker.group(self.group_id).next_expiry()
                if expiry is not None:
                    timeout = min(timeout, max(expiry - now, 0.0))
                await self._broker.wait(changed, timeout)
        finally:
            self._mark(polling=False)

    def _mark(self, *, polling: bool) -> None:
        member = self._broker.group(self.group_id).members.get(self._member_id or "")
        if member is not None:
            member.polling = polling
            member.last_seen = asyncio.get_running_loop().time()

    def _settled(self) -> bool:
        group = self._broker.group(self.group_id)
        return self._member_id in group.members and self._generation == group.generation

    async def _sync(self) -> None:
        group = self._broker.group(self.group_id)
        if self._member_id not in group.members:
            self._member_id = self._broker.join(self.group_id, self._topics, self._session_timeout)
            self._mark(polling=True)
        while (member_id := self._member_id) in group.members and (
            self._generation != (generation := group.generation)
        ):
            assert member_id is not None
            if self._revoked_for != generation:
                # Eager: everything goes back, kept partitions too (aiokafka's listener
                # hears the whole previous assignment).
                lost = self._assignment
                self._take(frozenset())
                self._revoked_for = generation
                await self._tell(self._listener.revoked, lost)
                self._broker.synced(self.group_id, member_id, generation)
            elif group.settled(generation):
                self._generation = generation
                self._take(group.assignment.get(member_id, frozenset()))
                self._heeding.received(group.notes.get(member_id))
                await self._tell(self._listener.assigned, self._assignment)
            else:
                return  # other members are still giving up theirs

    def _take(self, assignment: frozenset[TP]) -> None:
        """Hold ``assignment``, unpaused, each partition at the group's committed offset."""
        self._assignment = assignment
        self._paused.clear()
        self._positions = {tp: self._broker.committed(self.group_id, tp) or 0 for tp in assignment}

    async def _tell(
        self, call: Callable[[Sequence[TP]], Awaitable[None]], tps: frozenset[TP]
    ) -> None:
        try:
            await call(sorted(tps))
        except Exception:
            # As aiokafka: a failing listener is logged and the group goes on.
            log.exception("rebalance listener of group %s failed (%s)", self.group_id, tps)

    def _fetch(self, max_records: int) -> dict[TP, list[Consumed]]:
        tps = sorted(self._assignment - self._paused)
        if not tps:
            return {}
        # Start at another partition each time, so none starves the others.
        start = self._turn % len(tps)
        self._turn += 1
        fetched: dict[TP, list[Consumed]] = {}
        budget = max_records
        for tp in tps[start:] + tps[:start]:
            if budget <= 0:
                break
            records, self._positions[tp] = self._broker.log(tp).read(self._positions[tp], budget)
            if records:
                fetched[tp] = records
                budget -= len(records)
        return fetched

    def assignment(self) -> frozenset[TP]:
        return self._assignment

    def pause(self, tps: Sequence[TP]) -> None:
        self._paused.update(tp for tp in tps if tp in self._assignment)

    def resume(self, tps: Sequence[TP]) -> None:
        self._paused.difference_update(tps)
        self._broker.wake()  # as a client's fetcher: a poll in progress sees them at once

    def seek(self, tp: TP, offset: int) -> None:
        if tp not in self._assignment:
            raise NotAssigned(f"{tp} is no longer assigned")
        self._positions[tp] = offset

    async def committed(self, tp: TP) -> int:
        await asyncio.sleep(0)  # a round trip to the group coordinator: others run meanwhile
        # No retention here: a partition's first offset is 0.
        return self._broker.committed(self.group_id, tp) or 0

    def lag(self, tp: TP, position: int) -> int | None:
        """Readable records beyond ``position``; None for a partition not assigned."""
        if tp not in self._assignment:
            return None
        return max(self._broker.log(tp).last_stable_offset - position, 0)

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        await asyncio.sleep(0)  # a round trip to the group coordinator
        # As Kafka checks the member and its generation: refused once the group moved on.
        if not self._settled() or not set(offsets) <= self._assignment:
            raise NotAssigned(f"offsets of group {self.group_id} refused: not this member's")
        self._broker.group(self.group_id).committed.update(offsets)
