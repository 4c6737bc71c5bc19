"""The engine's notion of now: the wall clock, never going backwards.

Timers are absolute wall-clock times stored with the saga (they move with its partition
to other processes), so the engine reads a wall clock. A wall clock can jump. Forward:
timers come due early by the size of the jump, which is harmless while the jump is
smaller than the shortest step timeout (replies arrive in time). Backward: taken as is,
timers armed during the jump would be due early by its whole size once the clock is set
right again, however big the jump was. `NonDecreasingClock` stands still instead until
the wall clock passes the latest time it gave out, so a backward jump only delays
timers, and setting the clock right again is a forward jump no bigger than the time it
stood still.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


class NonDecreasingClock:
    """A clock that returns ``max(source(), the latest time it returned)``.

    Args:
        source: the wall clock (timezone-aware datetimes).
        report_after: a backward jump at least this big is logged (once per jump).
    """

    def __init__(self, source: Clock, report_after: timedelta = timedelta(seconds=1)) -> None:
        self._source = source
        self._latest: datetime | None = None
        self._report_after = report_after
        self._behind = False

    def __call__(self) -> datetime:
        now = self._source()
        latest = self._latest
        if latest is None or now >= latest:
            if self._behind:
                log.info("wall clock caught up with the engine's time (%s)", now.isoformat())
                self._behind = False
            self._latest = now
            return now
        if not self._behind and latest - now >= self._report_after:
            log.warning(
                "wall clock went back by %.1fs; engine time stands still until it catches up",
                (latest - now).total_seconds(),
            )
            self._behind = True
        return latest
