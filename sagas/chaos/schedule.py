"""The fault schedule of a run, drawn from its seed: the same seed gives the same schedule.

Faults are placed on the run's progress (the fraction of sagas placed), not on the wall
clock, so a replay on a slower or faster machine injects the same faults at the same
points of the workload. The schedule spreads them evenly over the placement window, in
an order and with offsets drawn from ``random.Random(seed)``.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sagas.errors import SagasError

WINDOW = (0.05, 0.85)
"""Faults go between 5% and 85% of the placement: the system is busy before the first,
and sagas are still placed after the last (recovery is measured on new progress)."""


class ScheduleError(SagasError):
    """The requested faults cannot be scheduled (an unknown kind, a negative count)."""


@dataclass(frozen=True, order=True)
class PlannedFault:
    """One fault of the schedule.

    Attributes:
        at: the fraction of sagas placed when it is injected (0..1).
        kind: the fault kind (a key of `sagas.chaos.faults.registry.FAULTS`).
        index: its position in the schedule, from 0.
    """

    at: float
    kind: str
    index: int = 0


def fault_counts(
    kinds: Iterable[str], known: Iterable[str], per_kind: int = 1, **counts: int
) -> dict[str, int]:
    """How many faults of each kind: ``per_kind`` each, or the count given for a kind.

    Raises:
        ScheduleError: an unknown kind or a negative count.
    """
    known_kinds = set(known)
    wanted = list(dict.fromkeys(kinds))
    unknown = sorted(set(wanted) - known_kinds) + sorted(set(counts) - known_kinds)
    if unknown:
        raise ScheduleError(
            f"unknown fault kind(s) {', '.join(unknown)}; known: {', '.join(sorted(known_kinds))}"
        )
    result = {kind: per_kind for kind in wanted}
    result.update({kind: n for kind, n in counts.items() if kind in wanted or n > 0})
    if any(n < 0 for n in result.values()):
        raise ScheduleError("fault counts must be >= 0")
    return {kind: n for kind, n in result.items() if n > 0}


def draw(seed: int, counts: Mapping[str, int]) -> list[PlannedFault]:
    """The schedule for ``counts`` (kind -> how many), drawn from ``seed``.

    Every fault gets its own slot of the window, so they are injected one at a time
    at roughly even intervals; the order of kinds and the point inside each slot are
    random. Kinds are taken in sorted order before shuffling, so the result depends
    only on the seed and the counts.
    """
    rng = random.Random(seed)
    kinds = [kind for kind in sorted(counts) for _ in range(counts[kind])]
    rng.shuffle(kinds)
    low, high = WINDOW
    width = (high - low) / max(len(kinds), 1)
    return [
        PlannedFault(round(low + (i + rng.uniform(0.2, 0.8)) * width, 6), kind, i)
        for i, kind in enumerate(kinds)
    ]
