"""Periodic work of a participant on its own store: `Every`, driven by `Timers`.

A participant declares ``timers=(Every(timedelta(minutes=1), expire_holds),)``; each
``run(db, now)`` is called in its own store transaction (``BEGIN IMMEDIATE`` ...
``COMMIT``, rolled back when it raises), so it never interleaves with a command's.

The framework runs nothing by itself: a runner drives the timers, either by calling
``await Timers(participant, store).tick(now)`` from its own loop (each due timer runs
once, the next due time is returned) or by running ``await run_timers(participant,
store)`` as one task of its task group until it is cancelled. Every timer is due at
once when the runner starts (work left while the service was down is done first),
then every ``interval`` after its previous run began. A timer that raises is logged
and tried again at its next turn; it stops nothing else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import aiosqlite

from sagas.participant.definition import Participant
from sagas.participant.store import Store

log = logging.getLogger(__name__)

TimerWork = Callable[[aiosqlite.Connection, datetime], Awaitable[None]]


@dataclass(frozen=True)
class Every:
    """Run ``run(db, now)`` every ``interval``, in a transaction of the service's store.

    Attributes:
        interval: the time from one run's start to the next.
        run: the work; it writes through ``db`` and never commits.
        name: for logs (default: the function's name).
    """

    interval: timedelta
    run: TimerWork
    name: str = ""

    def __post_init__(self) -> None:
        if self.interval <= timedelta(0):
            raise ValueError(f"timer {self.label}: the interval must be positive")

    @property
    def label(self) -> str:
        return self.name or getattr(self.run, "__name__", "timer")


class Timers:
    """The timers of one participant over its open store.

    Args:
        participant: declares the timers (`Participant.timers`).
        store: the participant's open store.
        clock: the time source `run_timers` uses (tests call `tick` with a time).
    """

    def __init__(
        self,
        participant: Participant,
        store: Store,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.participant = participant
        self.store = store
        self.clock = clock
        self._due: dict[int, datetime] = {}
        self.runs = 0
        self.failures = 0

    def next_due(self) -> datetime | None:
        """When the earliest timer is due next (None: the participant has no timer, or
        `tick` never ran: then every timer is due)."""
        if not self.participant.timers or len(self._due) < len(self.participant.timers):
            return None
        return min(self._due.values())

    async def tick(self, now: datetime) -> datetime | None:
        """Run every timer due at ``now``, each once; returns when one is due next."""
        for index, timer in enumerate(self.participant.timers):
            due = self._due.get(index)
            if due is not None and due > now:
                continue
            self._due[index] = now + timer.interval
            await self._run(timer, now)
        return self.next_due()

    async def _run(self, timer: Every, now: datetime) -> None:
        try:
            async with self.store.transaction() as db:
                await timer.run(db, now)
        except Exception:  # a timer's bug must not stop the service: next turn retries
            self.failures += 1
            log.exception("%s: timer %s failed", self.participant.name, timer.label)
        else:
            self.runs += 1


async def run_timers(
    participant: Participant,
    store: Store,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Drive ``participant``'s timers on ``store`` until cancelled (a runner's task).

    Returns at once when the participant has no timer.
    """
    if not participant.timers:
        return
    timers = Timers(participant, store, clock)
    while True:
        due = await timers.tick(clock())
        assert due is not None  # every timer has run once: each has a due time
        wait = (due - clock()).total_seconds()
        # The runner's own schedule (not test synchronisation): wake when one is due.
        await asyncio.sleep(max(wait, 0.0))
