"""Every final check the runner runs after quiescence, merged from the check modules.

Each module defines ``CHECKS: list[Check]``; add one here with one import and one
``*module.CHECKS`` line.
"""

from __future__ import annotations

from sagas.chaos.checks import dlq, files, processes, sagas, services, timers
from sagas.chaos.faults.base import Check

CHECKS: list[Check] = [
    *sagas.CHECKS,
    *services.CHECKS,
    *files.CHECKS,
    *dlq.CHECKS,
    *processes.CHECKS,
    *timers.CHECKS,
]
"""Every check, run in this order; each returns violations by kind."""
