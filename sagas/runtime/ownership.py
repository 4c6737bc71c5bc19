"""Where a unit stands: its one ownership state, and the only ways that state changes.

A unit (`sagas.runtime.units`) is born TAKING and ends RELEASED; every change in
between is a pair of `TRANSITIONS`, and `UnitState.move_to` refuses any other::

    TAKING ──taken──> OWNED ──indefinite error──> IN_DOUBT ──after a pause──> TAKING
       │                 └──fenced──> FENCED ──the group confirms this owner──> TAKING
       │                                 (or gives the unit back: TAKING)
       ├──fenced while taking──> FENCED
       └──revoked (any state)──> RELEASED (the task ends; producers closed)

    with idempotent delivery also: OWNED, IN_DOUBT ──given back──> TAKING

TAKING
    The unit's producers are started (with transactions, that fences any earlier
    owner), the store catches up from the changelogs and every partition is rewound to
    the group's committed offset.
OWNED
    Batches are decided and committed.
IN_DOUBT
    An indefinite error (a commit that outlasts ``commit_timeout``, a lost connection)
    means nobody knows whether the transaction committed: the producer is abandoned and,
    after a pause, the unit taken again (the re-initialised id settles the transaction
    one way or the other; the store catches up with what did commit; the consumer
    returns to the committed offsets), so local state agrees with Kafka whichever way it
    went. The process never stops over it. With idempotent delivery a unit also goes
    IN_DOUBT when the group does not confirm its owner before timers fire.
FENCED
    Another producer initialised the unit's transactional ids. The unit waits a pause,
    then asks the group whether this process is still the unit's owner, by committing
    the group's offsets of its partitions again, unchanged: the group refuses a member
    it dropped. Refused, it waits, FENCED, for the group to give the unit back or take
    it away (a zombie, dropped while paused, that rejoins). Confirmed, it is taken
    again: the ids were initialised by a process the group no longer counts as the
    owner (a zombie that took the unit while this one owned it), or this process was
    away and the group gave it the unit back after another process had fenced it;
    either way nobody else may write the unit's partitions, and waiting would leave them
    standing still until some later rebalance.
RELEASED
    Revoked: the unit's task has ended and its producers are closed. Nothing leaves it.

With idempotent delivery nothing fences an earlier owner, so a unit given back after a
rebalance is always taken again (whatever another process decided meanwhile is caught
up); with transactions only a FENCED one is, and the others find out at their next
commit. A unit given back while TAKING stays TAKING: that is no transition.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum
from types import MappingProxyType
from typing import Final

from sagas.runtime.errors import OwnershipError

log = logging.getLogger(__name__)


class Ownership(StrEnum):
    """Where a unit stands (see the module docstring)."""

    TAKING = "TAKING"
    OWNED = "OWNED"
    IN_DOUBT = "IN_DOUBT"
    FENCED = "FENCED"
    RELEASED = "RELEASED"


TRANSITIONS: Final[Mapping[tuple[Ownership, Ownership], str]] = MappingProxyType(
    {
        (Ownership.TAKING, Ownership.OWNED): "taken",
        (Ownership.TAKING, Ownership.FENCED): "fenced while taking it",
        (Ownership.OWNED, Ownership.IN_DOUBT): (
            "a batch ended in doubt, or (idempotent delivery) the group did not confirm "
            "this process as the owner before timers"
        ),
        (Ownership.OWNED, Ownership.FENCED): "a batch was fenced",
        (Ownership.OWNED, Ownership.TAKING): "given back after a rebalance (idempotent delivery)",
        (Ownership.IN_DOUBT, Ownership.TAKING): (
            "the pause after the doubt is over, or given back after a rebalance "
            "(idempotent delivery)"
        ),
        (Ownership.FENCED, Ownership.TAKING): (
            "the group confirms this process as the owner, or gave the unit back"
        ),
        (Ownership.TAKING, Ownership.RELEASED): "revoked",
        (Ownership.OWNED, Ownership.RELEASED): "revoked",
        (Ownership.IN_DOUBT, Ownership.RELEASED): "revoked",
        (Ownership.FENCED, Ownership.RELEASED): "revoked",
    }
)
"""Every change of a unit's state the engine makes, ``(from, to)``, with when it does."""


class UnitState:
    """The ownership state of unit ``k``: TAKING at first, then only along `TRANSITIONS`."""

    __slots__ = ("_current", "k")

    def __init__(self, k: int) -> None:
        self.k = k
        self._current = Ownership.TAKING

    @property
    def current(self) -> Ownership:
        return self._current

    def move_to(self, new: Ownership, why: str) -> None:
        """Change the state to ``new`` because of ``why`` (logged at debug level).

        Raises:
            OwnershipError: ``(current, new)`` is not one of `TRANSITIONS` (the state
                stays as it was): a bug in the engine.
        """
        if (self._current, new) not in TRANSITIONS:
            raise OwnershipError(self.k, self._current, new, why)
        log.debug("unit %d: %s -> %s (%s)", self.k, self._current, new, why)
        self._current = new
