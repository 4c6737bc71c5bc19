"""`MemoryBroker`: topics, transactional ids, consumer groups and faults, in one process.

Pure asyncio and deterministic: no threads, no randomness; a record's partition, a
member's id and an assignment follow from the order of calls alone. Time enters in two
places only: record timestamps come from ``wall_clock``, and sessions end by the
running loop's clock (`asyncio.AbstractEventLoop.time`), or at once with `expire`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from sagas.runtime.clock import Clock
from sagas.runtime.errors import FencedError, InDoubt, TopicSetupError, TransportError
from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.memory.groups import Group, Member
from sagas.runtime.transport.memory.log import (
    Outcome,
    PartitionLog,
    Transaction,
    partition_for_key,
)
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord

Call = Literal["start", "begin", "send", "send_offsets", "commit", "abort"]
"""A call of a transactional producer that a fault can be injected into."""


@dataclass
class _TransactionalId:
    epoch: int = 0
    open: Transaction | None = None
    faults: dict[Call, BaseException] = field(default_factory=dict)
    commit_in_doubt: bool | None = None
    """Set: the next commit raises `InDoubt`, after applying itself when True."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


class MemoryBroker:
    """The state several `MemoryTransport` objects share (several processes of a test).

    Args:
        wall_clock: the time given to records as their timestamp (timezone-aware).
    """

    def __init__(self, *, wall_clock: Clock = _utc_now) -> None:
        self._wall_clock = wall_clock
        self._topics: dict[str, list[PartitionLog]] = {}
        self._specs: dict[str, TopicSpec] = {}
        self._unkeyed: dict[str, itertools.count[int]] = {}
        self._ids: dict[str, _TransactionalId] = {}
        self._groups: dict[str, Group] = {}
        self._member_ids = itertools.count(1)
        self._changed = asyncio.Event()

    # -- change notification ---------------------------------------------------------

    def changed(self) -> asyncio.Event:
        """Set at the next change (a record readable, a rebalance, a sync, a commit)."""
        return self._changed

    async def wait(self, changed: asyncio.Event, seconds: float) -> bool:
        """Wait up to ``seconds`` for ``changed`` (from `changed`): whether it
        was set."""
        try:
            async with asyncio.timeout(max(seconds, 0.0)):
                await changed.wait()
        except TimeoutError:
            return False
        return True

    def wake(self) -> None:
        """Wake every waiting poll (a consumer resumed or moved a partition: what it
        may now read is not a change of the broker's)."""
        self._notify()

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- topics ----------------------------------------------------------------------

    def create_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        """Create the missing topics of ``specs``; returns the names created.

        Raises:
            TopicSetupError: a co-partitioned topic exists with another partition count
                (nothing is created then).
        """
        for spec in specs:
            logs = self._topics.get(spec.name)
            if logs is not None and spec.co_partitioned and len(logs) != spec.partitions:
                raise TopicSetupError(
                    f"topic {spec.name} has {len(logs)} partitions, configuration says "
                    f"{spec.partitions}: inbox and changelog must be co-partitioned"
                )
        created: list[str] = []
        for spec in specs:
            if spec.name in self._topics:
                continue
            if spec.partitions < 1:
                raise TopicSetupError(f"topic {spec.name}: {spec.partitions} partitions")
            self._topics[spec.name] = [
                PartitionLog(TP(spec.name, p)) for p in range(spec.partitions)
            ]
            self._specs[spec.name] = spec
            created.append(spec.name)
        if created:
            for group in self._groups.values():
                if any(set(created) & m.topics for m in group.members.values()):
                    self._rebalance(group)
        return created

    def topics(self) -> dict[str, TopicSpec]:
        """The topics that exist, as they were created."""
        return dict(self._specs)

    def log(self, tp: TP) -> PartitionLog:
        """The log of ``tp``.

        Raises:
            TransportError: no such partition.
        """
        logs = self._topics.get(tp.topic)
        if logs is None or not 0 <= tp.partition < len(logs):
            raise TransportError(f"unknown partition {tp}")
        return logs[tp.partition]

    def records(self, tp: TP) -> list[Consumed]:
        """The records of ``tp`` a ``read_committed`` reader returns (for assertions)."""
        return self.log(tp).committed_records()

    def _partition(self, record: OutRecord) -> PartitionLog:
        logs = self._topics.get(record.topic)
        if logs is None:
            raise TransportError(f"unknown topic {record.topic}")
        if record.partition is not None:
            return self.log(TP(record.topic, record.partition))
        if record.key is not None:
            return logs[partition_for_key(record.key, len(logs))]
        turn = self._unkeyed.setdefault(record.topic, itertools.count())
        return logs[next(turn) % len(logs)]

    def _append(self, record: OutRecord, transaction: Transaction | None) -> Delivered:
        log = self._partition(record)
        timestamp = int(self._wall_clock().timestamp() * 1000)
        offset = log.append(record.key, record.value, record.headers, timestamp, transaction)
        return Delivered(log.tp.topic, log.tp.partition, offset)

    def publish(self, record: OutRecord) -> Delivered:
        """Write ``record`` outside any transaction, readable at once (what a plain,
        idempotent producer does: a participant's reply, a test's input)."""
        delivered = self._append(record, None)
        self._notify()
        return delivered

    # -- transactional ids -----------------------------------------------------------

    def _state(self, transactional_id: str, epoch: int, call: Call) -> _TransactionalId:
        state = self._ids.get(transactional_id)
        if state is None or state.epoch != epoch:
            raise FencedError(f"{transactional_id} (epoch {epoch}) was fenced ({call})")
        fault = state.faults.pop(call, None)
        if fault is not None:
            raise fault
        return state

    def _transaction(self, transactional_id: str, epoch: int, call: Call) -> Transaction:
        state = self._state(transactional_id, epoch, call)
        if state.open is None:
            raise RuntimeError(f"{transactional_id}: {call} outside a transaction")
        return state.open

    def init_producer(self, transactional_id: str) -> int:
        """Bump the epoch of ``transactional_id`` (aborting its open transaction):
        returns the new epoch; calls with an older one raise `FencedError`."""
        state = self._ids.setdefault(transactional_id, _TransactionalId())
        fault = state.faults.pop("start", None)
        if fault is not None:
            raise fault
        if state.open is not None:
            self._end(state, Outcome.ABORTED)
        state.epoch += 1
        return state.epoch

    def begin(self, transactional_id: str, epoch: int) -> None:
        state = self._state(transactional_id, epoch, "begin")
        if state.open is not None:
            raise RuntimeError(f"{transactional_id}: a transaction is open already")
        state.open = Transaction(transactional_id)

    def write(self, transactional_id: str, epoch: int, record: OutRecord) -> Delivered:
        """Append ``record`` to its partition in the open transaction (not readable yet)."""
        return self._append(record, self._transaction(transactional_id, epoch, "send"))

    def add_offsets(
        self, transactional_id: str, epoch: int, offsets: Mapping[TP, int], group_id: str
    ) -> None:
        transaction = self._transaction(transactional_id, epoch, "send_offsets")
        transaction.offsets.setdefault(group_id, {}).update(offsets)

    def commit(self, transactional_id: str, epoch: int) -> None:
        self._transaction(transactional_id, epoch, "commit")
        state = self._ids[transactional_id]
        in_doubt, state.commit_in_doubt = state.commit_in_doubt, None
        if in_doubt is False:
            raise InDoubt(f"{transactional_id}: commit lost before the broker had it (injected)")
        self._end(state, Outcome.COMMITTED)
        if in_doubt:
            raise InDoubt(f"{transactional_id}: commit applied, its answer lost (injected)")

    def abort(self, transactional_id: str, epoch: int) -> None:
        self._transaction(transactional_id, epoch, "abort")
        self._end(self._ids[transactional_id], Outcome.ABORTED)

    def time_out_transaction(self, transactional_id: str) -> None:
        """What Kafka's coordinator does when a transaction outlives its timeout: abort
        it and bump the epoch, which fences its producer."""
        state = self._ids[transactional_id]
        if state.open is not None:
            self._end(state, Outcome.ABORTED)
        state.epoch += 1

    def _end(self, state: _TransactionalId, outcome: Outcome) -> None:
        transaction, state.open = state.open, None
        assert transaction is not None
        transaction.outcome = outcome
        for tp in transaction.first:
            self.log(tp).end(transaction)
        if outcome is Outcome.COMMITTED:
            # The group's offsets move exactly when the transaction's records become
            # readable: consume-process-produce commits as one.
            for group_id, offsets in transaction.offsets.items():
                self.group(group_id).committed.update(offsets)
        self._notify()

    # -- fault injection -------------------------------------------------------------

    def fail_next(self, transactional_id: str, call: Call, error: BaseException) -> None:
        """The next ``call`` of ``transactional_id``'s producer raises ``error`` and does
        nothing (e.g. ``fail_next(tid, "send", InDoubt("lost"))``)."""
        self._ids.setdefault(transactional_id, _TransactionalId()).faults[call] = error

    def fail_next_commit(self, transactional_id: str, *, applied: bool) -> None:
        """The next commit of ``transactional_id`` raises `InDoubt`. ``applied``: the
        broker committed the transaction and the answer was lost; otherwise the request
        was lost and the transaction stays open (until the next producer of the id
        aborts it, or `time_out_transaction`)."""
        self._ids.setdefault(transactional_id, _TransactionalId()).commit_in_doubt = applied

    # -- consumer groups -------------------------------------------------------------

    def group(self, group_id: str) -> Group:
        return self._groups.setdefault(group_id, Group(group_id))

    def committed(self, group_id: str, tp: TP) -> int | None:
        """The offset of ``tp`` that ``group_id`` committed, if any."""
        self.log(tp)
        return self.group(group_id).committed.get(tp)

    def join(self, group_id: str, topics: Sequence[str], session_timeout: timedelta) -> str:
        """Add a member to ``group_id``; returns its id (ids sort in the order of joins)."""
        group = self.group(group_id)
        member_id = f"member-{next(self._member_ids):06d}"
        now = asyncio.get_running_loop().time()
        timeout = session_timeout.total_seconds()
        group.members[member_id] = Member(member_id, frozenset(topics), timeout, now)
        self._rebalance(group)
        return member_id

    def leave(self, group_id: str, member_id: str) -> None:
        group = self.group(group_id)
        if group.members.pop(member_id, None) is not None:
            self._rebalance(group)

    def expire(self, group_id: str, member_id: str) -> None:
        """End ``member_id``'s session now, as if it had stopped polling: the group
        rebalances without it (it rejoins, as a new member, when it polls again)."""
        self.leave(group_id, member_id)

    def expire_stale(self, group_id: str) -> None:
        """Remove the members whose session ended by the loop's clock."""
        group = self.group(group_id)
        stale = group.stale(asyncio.get_running_loop().time())
        for member_id in stale:
            del group.members[member_id]
        if stale:
            self._rebalance(group)

    def synced(self, group_id: str, member_id: str, generation: int) -> None:
        """``member_id`` gave up its partitions for ``generation``."""
        self.group(group_id).sync(member_id, generation)
        self._notify()

    def _rebalance(self, group: Group) -> None:
        group.rebalance({name: range(len(logs)) for name, logs in self._topics.items()})
        self._notify()
