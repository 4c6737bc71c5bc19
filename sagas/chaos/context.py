"""What the runner knows beyond the shared `ChaosContext`: the work placed and what ended.

The final checks of the core helper read these fields (the placed requests, the outcome
events seen, every changelog record's state, the processes that died on their own).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sagas.chaos.faults.base import ChaosContext

if TYPE_CHECKING:
    from sagas.chaos.final import SagaRecords
    from sagas.dev.outcomes import OutcomeWatcher
    from services.workload import Request, Workload


@dataclass
class RunContext(ChaosContext):
    """The run's context: the shared one plus the workload's bookkeeping.

    Attributes:
        workloads: by saga name (both shipped workloads).
        placed: by saga name, the requests the entry services accepted.
        watcher: follows ``sagas.events`` (how each saga ended, as announced).
        records: by saga id, every committed changelog state of it (read after
            quiescence); the final checks compare consecutive states.
        exits: processes that died without a fault killing them: name -> description.
        in_fault: a fault is being injected (its processes may be down on purpose).
        progress: set whenever a request is placed.
        recovery: by fault kind, seconds from each heal until a saga ended again.
        problems: violations the runner itself saw (a fault that raised, no recovery).
    """

    workloads: dict[str, Workload] = field(default_factory=dict)
    placed: dict[str, list[Request]] = field(default_factory=dict)
    watcher: OutcomeWatcher | None = None
    records: dict[str, SagaRecords] = field(default_factory=dict)
    exits: dict[str, list[str]] = field(default_factory=dict)
    in_fault: bool = False
    progress: asyncio.Event = field(default_factory=asyncio.Event)
    recovery: dict[str, list[float]] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)

    def problem(self, kind: str, message: str) -> None:
        """Record a violation the runner saw while running."""
        self.problems.setdefault(kind, []).append(message)

    def placed_ids(self) -> dict[str, str]:
        """Saga id -> saga name of every placed request."""
        return {r.saga_id: name for name, reqs in self.placed.items() for r in reqs}

    def ended(self) -> int:
        """How many placed sagas announced their end on ``sagas.events``."""
        if self.watcher is None:
            return 0
        sagas = self.watcher.sagas
        return sum(
            1
            for reqs in self.placed.values()
            for r in reqs
            if (o := sagas.get(r.saga_id)) is not None and o.state != "RUNNING"
        )

    def placed_count(self) -> int:
        return sum(len(reqs) for reqs in self.placed.values())
