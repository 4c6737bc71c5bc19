"""The engines' assignment rule, one for both transports: whole units, and only to the
members that read every topic of the group.

Engines of one group are meant to run the same sagas, hence read the same topics. Unit
``k`` is partition ``k`` of every one of them (`sagas.runtime.partitioning`), and its
transactional ids name only the group and ``k`` (`sagas.runtime.units`). Two engines of
different saga sets in one group would both be "unit k", fencing each other forever,
and partition ``k`` of a topic both read would go to one of them, which routes its
events to its own sagas only: the other's would never see them. So, with ``U`` the
union of the members' subscriptions:

- the members subscribed to exactly ``U`` share the units: partition ``k`` of every
  topic goes to the same one of them, dealt round robin over them sorted by id;
- every other member gets nothing and is told to stand by (`Standby`): what a rolling
  upgrade that adds a saga looks like, the old engines idle while the new ones run
  everything (and take units again if the group shrinks back to their topics);
- when no member subscribes to ``U``, nobody gets anything and every member is told
  the group is mixed (`Mixed`): its group consumer raises `GroupMismatch`.

The note rides with each member's assignment: on Kafka in the ``user_data`` of its
``ConsumerProtocolMemberAssignment`` (`encode`, `decode`), in memory on the group.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

from sagas.runtime.errors import GroupMismatch
from sagas.runtime.transport.records import TP

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Standby:
    """Another member reads more topics: this one gets nothing for now."""

    missing: frozenset[str]
    """The topics of the group this member does not read."""


@dataclass(frozen=True)
class Mixed:
    """No member reads every topic of the group: nobody gets anything."""

    missing: frozenset[str]
    """The topics of the group this member does not read."""


Note = Standby | Mixed
"""What a member is told besides its partitions (nothing: it takes part)."""


@dataclass(frozen=True)
class Dealt:
    """One member's share of a generation."""

    tps: frozenset[TP]
    note: Note | None = None


def deal(
    subscriptions: Mapping[str, Collection[str]], partitions: Mapping[str, Collection[int]]
) -> dict[str, Dealt]:
    """The assignment of a group.

    Args:
        subscriptions: each member's topics, by member id.
        partitions: the partition numbers of each topic that exists (a subscribed topic
            missing here counts for the rule but has nothing to deal).
    """
    union = frozenset(t for topics in subscriptions.values() for t in topics)
    full = sorted(m for m, topics in subscriptions.items() if frozenset(topics) == union)
    dealt: dict[str, Dealt] = {}
    for member, topics in subscriptions.items():
        missing = union - frozenset(topics)
        if missing:
            dealt[member] = Dealt(frozenset(), Standby(missing) if full else Mixed(missing))
    if not full:
        return dealt
    shares: dict[str, set[TP]] = {m: set() for m in full}
    for topic in sorted(union & partitions.keys()):
        for k in sorted(partitions[topic]):
            shares[full[k % len(full)]].add(TP(topic, k))
    dealt.update((m, Dealt(frozenset(tps))) for m, tps in shares.items())
    return dealt


def encode(note: Note | None) -> bytes:
    """The note as the ``user_data`` of a Kafka assignment (empty: no note)."""
    if note is None:
        return b""
    kind = "standby" if isinstance(note, Standby) else "mixed"
    return f"{kind}:{','.join(sorted(note.missing))}".encode()


def decode(data: bytes, rename: Callable[[str], str] = str) -> Note | None:
    """The note in ``user_data`` (`encode`), topics renamed with ``rename``; None for no
    note or one this release does not know."""
    kind, _, topics = data.decode("utf-8", "replace").partition(":")
    missing = frozenset(rename(t) for t in topics.split(",") if t)
    if kind == "standby":
        return Standby(missing)
    if kind == "mixed":
        return Mixed(missing)
    return None


class Heeding:
    """What a group consumer does with its notes (both transports).

    `received` takes the note of each new generation; `heed`, called by ``poll``, acts
    on the latest: a `Standby` logs one WARNING per generation (the member's assignment
    is empty, so ``poll`` returns nothing), a `Mixed` raises `GroupMismatch` from then on
    (kept when a later generation brings another note: the group was mixed, and every
    member must hear it, not only the ones that happened to poll in time).
    """

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self._note: Note | None = None
        self._warned = False

    @property
    def note(self) -> Note | None:
        """The note of the latest generation."""
        return self._note

    def received(self, note: Note | None) -> None:
        """A new generation's note."""
        if not isinstance(self._note, Mixed):
            self._note = note
        self._warned = False

    def heed(self) -> None:
        """Act on the latest note.

        Raises:
            GroupMismatch: the group mixes engines of different saga sets.
        """
        note = self._note
        if isinstance(note, Mixed):
            raise GroupMismatch(
                f"engines of group {self.group_id} subscribe to different topics and none "
                f"covers them all (this one does not read {', '.join(sorted(note.missing))}); "
                "give each set of sagas its own SAGAS_ENGINE_GROUP, and never run one saga "
                "in two groups"
            )
        if isinstance(note, Standby) and not self._warned:
            self._warned = True
            log.warning(
                "standing by in group %s: another engine of the group runs more sagas (it "
                "also reads %s); this one gets no units while such an engine is in the group",
                self.group_id,
                ", ".join(sorted(note.missing)),
            )
