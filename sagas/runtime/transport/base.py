"""What the runtime needs from a broker: protocols, implemented for Kafka and in memory.

Topic names are logical everywhere above this layer (a transport may add a prefix).
Errors raised are the runtime's own (`sagas.runtime.errors`):

- `TransportError` (retryable): the broker did not answer or refused for now;
- `InDoubt` (a `TransportError`): a transaction's outcome is unknown (a timeout or a
  lost connection during it); the producer must be abandoned and the partition's state
  read back from the broker;
- `FencedError`: a newer producer initialised the same transactional id;
- `NotAssigned`: the partition left this consumer's assignment meanwhile;
- `GroupMismatch`: the group's members read different topics and none reads them all.

Semantics every implementation keeps (tests/contract/ checks them):

- a group consumer reads with ``read_committed``: records of an open transaction are
  not returned until it commits, records of an aborted one never;
- offsets sent with `TransactionalProducer.send_offsets` become the group's committed
  offsets exactly when that transaction commits; offsets a member commits itself
  (`GroupConsumer.commit`) at once, while the group has not moved them away;
- a record of an idempotent `Producer` is readable as soon as it is written;
- starting a transactional producer aborts the open transaction of any earlier
  producer with the same transactional id and fences it: its later calls fail with
  `FencedError`;
- the partitions of a group's topics are spread over its members; a member that
  stops, or whose session ends, loses them to the others (listener calls first);
- the engine's rule (`sagas.runtime.transport.assignment`): partition ``k`` of every
  topic goes to one member, among those that read every topic of the group; a member
  that reads fewer stands by (it gets nothing, and its `GroupConsumer.poll` logs a
  warning once per generation); when no member reads them all, every member's `poll`
  raises `GroupMismatch`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import timedelta
from typing import Protocol

from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord


class Rebalance(Protocol):
    """Told by a `GroupConsumer` when its assignment changes (awaited in order)."""

    async def revoked(self, tps: Sequence[TP]) -> None:
        """``tps`` are about to go to other members: finish what is in flight."""

    async def assigned(self, tps: Sequence[TP]) -> None:
        """``tps`` were given to this member (nothing of them is fetched before ``resume``
        when the listener paused them)."""


class GroupConsumer(Protocol):
    """A member of a consumer group reading with ``read_committed``."""

    group_id: str

    async def start(self) -> None:
        """Join the group (the first assignment may come with a later `poll`)."""

    async def stop(self) -> None:
        """Leave the group; idempotent, bounded."""

    async def poll(self, wait: timedelta, max_records: int) -> dict[TP, list[Consumed]]:
        """Records of the assigned, unpaused partitions, at most ``max_records`` in all;
        waits up to ``wait`` when there are none (and runs rebalances meanwhile).

        A member told to stand by (another member reads more topics) has nothing
        assigned: it returns nothing and logs a WARNING once per generation.

        Raises:
            GroupMismatch: the group's members read different topics and none reads
                them all (from the generation that said so on, every later call too).
        """

    def assignment(self) -> frozenset[TP]:
        """The partitions assigned now."""

    def pause(self, tps: Sequence[TP]) -> None:
        """Fetch nothing more of ``tps`` until `resume`."""

    def resume(self, tps: Sequence[TP]) -> None:
        """Fetch ``tps`` again."""

    def seek(self, tp: TP, offset: int) -> None:
        """The next record of ``tp`` returned is the one at ``offset``."""

    async def committed(self, tp: TP) -> int:
        """The group's committed offset of ``tp``; its first offset when none was."""

    def lag(self, tp: TP, position: int) -> int | None:
        """Records of ``tp`` readable (last stable offset) beyond ``position``, when known."""

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        """Make ``offsets`` the group's committed offsets now, outside any transaction.

        Raises:
            NotAssigned: a partition of ``offsets`` is no longer this member's (the
                group rebalanced or ended its session): nothing is committed.
            TransportError: the broker did not answer; whether they were committed is
                unknown.
        """


class TransactionalProducer(Protocol):
    """A producer whose records and consumed offsets commit or abort together."""

    transactional_id: str

    async def start(self) -> None:
        """Initialise the transactional id: aborts and fences any earlier producer of it."""

    async def begin(self) -> None:
        """Begin a transaction."""

    async def send(self, record: OutRecord) -> asyncio.Future[Delivered]:
        """Queue ``record`` in the open transaction; the future resolves when it is
        written (its transaction may still abort)."""

    async def send_offsets(self, offsets: Mapping[TP, int], group_id: str) -> None:
        """Make ``offsets`` the group's committed offsets if the transaction commits."""

    async def commit(self) -> None:
        """Commit the open transaction (returns once the broker decided it)."""

    async def abort(self) -> None:
        """Abort the open transaction."""

    async def stop(self) -> None:
        """Close after delivering what is queued; idempotent, bounded."""

    async def abandon(self) -> None:
        """Close at once, delivering nothing more (after `InDoubt`); bounded."""


class Producer(Protocol):
    """A producer without transactions: idempotent (``acks=all``, no duplicates from its
    own retries), so a record it reports written stays written; nothing fences it."""

    name: str

    async def start(self) -> None:
        """Connect."""

    async def send(self, record: OutRecord) -> asyncio.Future[Delivered]:
        """Queue ``record``; the future resolves once it is written (readable at once),
        or raises `TransportError`."""

    async def stop(self) -> None:
        """Close after delivering what is queued; idempotent, bounded."""

    async def abandon(self) -> None:
        """Close at once, delivering nothing more; bounded."""


class PartitionReader(Protocol):
    """Reads whole partitions with ``read_committed`` (the changelogs, on catch-up)."""

    async def end_offset(self, tp: TP) -> int:
        """The last stable offset of ``tp``: reading up to it sees every committed record."""

    def read(
        self, tp: TP, start: int, end: int, max_records: int
    ) -> AsyncIterator[tuple[list[Consumed], int]]:
        """Slices of ``tp`` from ``start`` until the position reaches ``end``, each with
        the position after it (transaction markers move the position, not the records)."""

    async def close(self) -> None:
        """Release the reader; idempotent, bounded."""


class Transport(Protocol):
    """Makes the clients of one broker (or of the in-memory one)."""

    def physical(self, topic: str) -> str:
        """The broker's name of a logical topic (what a record names for other
        processes: the ``reply_to`` of a command, the ``dlq_topic`` of a dead letter)."""

    def group_consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        listener: Rebalance,
        *,
        session_timeout: timedelta,
        fetch_wait: timedelta,
    ) -> GroupConsumer:
        """A consumer of ``topics`` in ``group_id`` (not started)."""

    def transactional_producer(
        self, transactional_id: str, *, request_timeout: timedelta
    ) -> TransactionalProducer:
        """A transactional producer (not started)."""

    def idempotent_producer(self, name: str, *, request_timeout: timedelta) -> Producer:
        """A producer without transactions (not started); ``name`` is for logs."""

    def partition_reader(self) -> PartitionReader:
        """A reader for changelog catch-up."""

    async def ensure_topics(self, specs: Sequence[TopicSpec], replication_factor: int) -> list[str]:
        """Create the topics that are missing; returns the names created.

        Raises:
            TopicSetupError: a co-partitioned topic exists with another partition count,
                or topics cannot be created.
        """

    async def close(self) -> None:
        """Release shared resources; idempotent."""
