"""Where a unit's replay ends: timers wait for it with idempotent delivery.

Without transactions an owner (this process before a batch ended in doubt, or another
one) may have written a batch's outputs and not its state. Decided again, such an input
sends the same messages; a timer fired before it could decide otherwise (compensate a
step whose next command is already out). So after a unit is taken, its timers wait
until every record that was in its partitions at that moment has been decided again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Set

from sagas.runtime.transport.records import TP, Consumed

Lag = Callable[[TP, int], "int | None"]
"""Records of a partition readable beyond a position, when known (`GroupConsumer.lag`)."""


class Replay:
    """The end of a unit's replay: each partition's end when it was first known after
    the unit was taken (its position then plus its lag)."""

    def __init__(self) -> None:
        self._ends: dict[TP, int] | None = None

    def begin(self) -> None:
        """The unit was taken (or its partitions rewound): a replay starts."""
        self._ends = {}

    def over(
        self,
        tps: Set[TP],
        positions: Mapping[TP, int],
        lag: Lag,
        pending: Iterable[Consumed],
    ) -> bool:
        """Whether every record up to each partition's end is decided: fetched
        (``positions``: the next offset of each partition) and not ``pending``."""
        ends = self._ends
        if ends is None:
            return True
        for tp in tps:
            if tp not in ends:
                position = positions.get(tp)
                behind = None if position is None else lag(tp, position)
                if position is None or behind is None:
                    return False  # the partition's end is not known yet
                ends[tp] = position + behind
        if any(positions.get(tp, 0) < end for tp, end in ends.items()):
            return False  # not all fetched yet
        if any(r.offset < ends.get(r.tp, 0) for r in pending):
            return False  # fetched, not all decided yet
        self._ends = None
        return True
