"""Step kinds and retry policies: the pieces of a definition that carry no saga data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from sagas.contracts.record import Record


class StepKind(StrEnum):
    """Where a step stands relative to the point of no return.

    A valid saga lists its compensatable steps first, then at most one pivot, then its
    retriable steps.
    """

    COMPENSATABLE = "compensatable"
    """Can be undone: when a later step fails, its compensation runs."""

    PIVOT = "pivot"
    """The point of no return: once it succeeds the saga can only go forward."""

    RETRIABLE = "retriable"
    """After the pivot: retried until it succeeds (by default without limit), never
    compensated."""


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How often and how fast a command is sent again.

    The delay before send ``n + 1`` (``n`` sends so far) is
    ``min(max_backoff, initial_backoff * multiplier ** (n - 1))``, then shortened by up to
    ``jitter`` (a fraction) using a value derived from the saga id, step and attempt, so
    the same saga always waits the same time (no randomness in the core).

    The defaults: one send (``max_attempts=1``), then 1 s, 2 s, 4 s... capped at 5 min,
    up to 20 % shorter (``jitter=0.2``), no failure reply retried, timeouts retried.
    A `Step` without a policy gets its kind's default (`Step.effective_retry`): one
    send for compensatable steps and the pivot, ``RetryPolicy(max_attempts=None)``
    (retried until it succeeds) for retriable ones. A `Compensation` defaults to
    ``RetryPolicy(max_attempts=5)``.

    Attributes:
        max_attempts: sends in total, the first included; ``None`` retries forever.
            Default 1.
        initial_backoff: the delay before the second send. Default 1 s.
        multiplier: growth of the delay per send (``>= 1``). Default 2.
        max_backoff: the cap on the delay. Default 5 min.
        jitter: the fraction of the delay that may be cut off, in ``[0, 1]``. Default 0.2.
        retry_on: failure reply types worth retrying; any other failure reply fails the
            step at once. Retriable steps (`StepKind.RETRIABLE`) and compensations retry
            every failure. Default: none.
        retry_on_timeout: whether a timeout is retried (the same command id is sent
            again, so a participant that did the work replays its reply). Default True.
    """

    max_attempts: int | None = 1
    initial_backoff: timedelta = timedelta(seconds=1)
    multiplier: float = 2.0
    max_backoff: timedelta = timedelta(minutes=5)
    jitter: float = 0.2
    retry_on: tuple[type[Record], ...] = ()
    retry_on_timeout: bool = True

    def allows(self, sends: int) -> bool:
        """Whether another send is allowed after ``sends`` sends in this round."""
        return self.max_attempts is None or sends < self.max_attempts

    def delay(self, sends: int, unit: float) -> timedelta:
        """The delay before the next send.

        Args:
            sends: sends so far in this round (``>= 1``).
            unit: a deterministic value in ``[0, 1)`` (see `jitter_unit`).
        """
        try:
            base = self.initial_backoff.total_seconds() * self.multiplier ** max(0, sends - 1)
        except OverflowError:  # unbounded retries: after about 1,000 sends the power overflows
            base = self.max_backoff.total_seconds()
        capped = min(base, self.max_backoff.total_seconds())
        return timedelta(seconds=capped * (1.0 - self.jitter * unit))

    def problems(self) -> list[str]:
        """What is wrong with this policy, if anything (used by validation)."""
        found: list[str] = []
        if self.max_attempts is not None and self.max_attempts < 1:
            found.append(f"retry max_attempts must be >= 1 or None, got {self.max_attempts}")
        if self.multiplier < 1:
            found.append(f"retry multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            found.append(f"retry jitter must be within [0, 1], got {self.jitter}")
        if self.initial_backoff < timedelta(0) or self.max_backoff < self.initial_backoff:
            found.append("retry backoffs must satisfy 0 <= initial_backoff <= max_backoff")
        return found


def jitter_unit(*parts: object) -> float:
    """A value in ``[0, 1)`` derived from ``parts`` by hashing (stable across processes)."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
