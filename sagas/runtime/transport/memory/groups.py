"""Consumer groups: members, generations, the engine's assignment, session expiry.

The model is Kafka's eager rebalance protocol as aiokafka runs it. Every change of
membership (a join, a leave, an expired session, a new topic) starts a generation with
a fresh assignment. Each member then gives up everything it held (its ``revoked``
listener, even for partitions it keeps) and syncs; only when every member has synced
does any of them take its new partitions (``assigned``). So a partition is never held
by two members at once, and a member that does not poll holds the group up until its
session ends.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from sagas.runtime.transport.assignment import Note, deal
from sagas.runtime.transport.records import TP


@dataclass
class Member:
    member_id: str
    topics: frozenset[str]
    session_timeout: float
    """Seconds without a poll after which the member is removed."""
    last_seen: float
    """Loop time of its last poll (its start, or when it last left `poll`)."""
    polling: bool = False
    """Inside `poll` now: alive whatever the time (Kafka's heartbeats)."""

    def expires_at(self) -> float | None:
        return None if self.polling else self.last_seen + self.session_timeout


@dataclass
class Group:
    group_id: str
    members: dict[str, Member] = field(default_factory=dict)
    generation: int = 0
    assignment: dict[str, frozenset[TP]] = field(default_factory=dict)
    notes: dict[str, Note] = field(default_factory=dict)
    """What members of the current generation are told besides their partitions."""
    synced: set[str] = field(default_factory=set)
    """Members that gave up their partitions for the current generation."""
    committed: dict[TP, int] = field(default_factory=dict)

    def rebalance(self, partitions: Mapping[str, Collection[int]]) -> None:
        """Start a generation: every member must sync before anyone gets partitions.

        The engine's rule deals (`sagas.runtime.transport.assignment.deal`), as
        `sagas.runtime.transport.kafka.CoPartitionedAssignor` does on Kafka.
        """
        self.generation += 1
        self.synced.clear()
        dealt = deal({m.member_id: m.topics for m in self.members.values()}, partitions)
        self.assignment = {m: d.tps for m, d in dealt.items()}
        self.notes = {m: d.note for m, d in dealt.items() if d.note is not None}

    def sync(self, member_id: str, generation: int) -> None:
        if generation == self.generation and member_id in self.members:
            self.synced.add(member_id)

    def settled(self, generation: int) -> bool:
        """Whether every member synced for ``generation`` (still the current one)."""
        return generation == self.generation and self.synced >= self.members.keys()

    def stale(self, now: float) -> list[str]:
        """The members whose session ended by ``now``."""
        return [
            m.member_id
            for m in self.members.values()
            if (end := m.expires_at()) is not None and now >= end
        ]

    def next_expiry(self) -> float | None:
        """When the next session ends, unless its member polls first."""
        ends = [end for m in self.members.values() if (end := m.expires_at()) is not None]
        return min(ends, default=None)
