"""What `decide` consumes besides messages: fired timers and operator actions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sagas.contracts.record import Envelope, Record
from sagas.machine.instance import TimerKind


@dataclass(frozen=True, kw_only=True)
class TimerFired:
    """A timer of the instance came due; the fields repeat the `Timer`'s.

    A firing that matches no pending timer (already cancelled, or fired twice) is
    ignored and recorded.
    """

    kind: TimerKind
    step: str | None
    attempt: int
    due: datetime


@dataclass(frozen=True, kw_only=True)
class OperatorAction:
    """Base of the operator actions.

    Attributes:
        id: unique per action (a repeated id is a duplicate and is ignored).
        actor: who asked, for the audit log.
        reason: why, for the audit log.
    """

    id: str
    actor: str = "operator"
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Retry(OperatorAction):
    """Retry the step that left the saga FAILED going forward, with a fresh retry budget."""


@dataclass(frozen=True, kw_only=True)
class Abort(OperatorAction):
    """Compensate now (only before the point of no return)."""


@dataclass(frozen=True, kw_only=True)
class Resume(OperatorAction):
    """Resume a saga FAILED in compensation: retry the failed compensation, then go on."""


@dataclass(frozen=True, kw_only=True)
class Pause(OperatorAction):
    """Stop sending and stop timers; replies are still recorded."""


@dataclass(frozen=True, kw_only=True)
class Unpause(OperatorAction):
    """Undo `Pause`: timers that came due meanwhile fire now, then the saga moves on."""


@dataclass(frozen=True, kw_only=True)
class RetryNow(OperatorAction):
    """Send a step (or compensation) waiting for its backoff now.

    Attributes:
        step: the step; ``None`` means every step waiting for a backoff.
    """

    step: str | None = None


@dataclass(frozen=True, kw_only=True)
class SkipStep(OperatorAction):
    """Mark a step as succeeded with a supplied result, as if it had replied.

    Applies to a step that is running, waiting for a retry, or failed (with the saga
    FAILED going forward). With the saga compensating or FAILED in compensation, it marks
    the step's compensation as done instead.

    Attributes:
        step: the step.
        result: a success reply (or event) of the step, applied to the saga data like a
            real one; ``None`` leaves the data as is.
    """

    step: str
    result: Record | None = None


Input = Envelope | TimerFired | OperatorAction
"""Everything `decide` accepts: start events, replies and choreography events arrive as
envelopes."""
