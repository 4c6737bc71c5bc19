"""The state of one saga instance: an immutable value, rebuilt by every decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from sagas.contracts.record import Envelope, Record

D = TypeVar("D")


class SagaState(StrEnum):
    """Where a saga instance stands (see the diagram in docs/concepts.md)."""

    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    COMPENSATING = "COMPENSATING"
    COMPLETED = "COMPLETED"
    COMPENSATED = "COMPENSATED"
    FAILED = "FAILED"

    @property
    def ended(self) -> bool:
        """Whether nothing more happens without an operator (FAILED included)."""
        return self in (SagaState.COMPLETED, SagaState.COMPENSATED, SagaState.FAILED)


class StepStatus(StrEnum):
    """Where one step stands."""

    PENDING = "PENDING"
    SKIPPED = "SKIPPED"
    RUNNING = "RUNNING"
    RETRYING = "RETRYING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    COMPENSATING = "COMPENSATING"
    COMPENSATION_RETRYING = "COMPENSATION_RETRYING"
    COMPENSATED = "COMPENSATED"
    COMPENSATION_FAILED = "COMPENSATION_FAILED"


class TimerKind(StrEnum):
    """What a timer is for."""

    TIMEOUT = "TIMEOUT"
    RETRY = "RETRY"
    COMPENSATION_TIMEOUT = "COMPENSATION_TIMEOUT"
    COMPENSATION_RETRY = "COMPENSATION_RETRY"
    DEADLINE = "DEADLINE"


@dataclass(frozen=True, kw_only=True)
class Timer:
    """A pending timer. When ``due`` passes, the runtime feeds back a `TimerFired`
    carrying the same four fields.

    Attributes:
        kind: what it is for.
        step: the step it concerns (``None`` for the deadline).
        attempt: the attempt it concerns: the attempt waited for (timeouts) or the one
            to send (retries).
        due: when it fires.
    """

    kind: TimerKind
    step: str | None
    attempt: int
    due: datetime


@dataclass(frozen=True, kw_only=True)
class StepState:
    """Where one step of an instance stands.

    Attributes:
        name: the step.
        status: its status.
        attempt: the attempt number of the last command sent (part of its ``ce_id``).
        sends: sends in the current round, counted against the retry policy (an
            operator's retry starts a new round).
        comp_attempt, comp_sends: the same for the compensation.
        started, ended: when the step was first sent or awaited, and when it finished.
        error: the last failure, for people.
        reply: the reply or event that decided it (or the operator-supplied result).
        unanswered: whether the last command sent (attempt ``attempt``) has had no reply
            yet. Set when it is sent, kept when it times out (a resend carries the same
            id), cleared by any reply to it. A compensatable step that ends FAILED or
            CANCELLED while unanswered may have been applied: it is compensated.
    """

    name: str
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    sends: int = 0
    comp_attempt: int = 0
    comp_sends: int = 0
    started: datetime | None = None
    ended: datetime | None = None
    error: str | None = None
    reply: Record | None = None
    unanswered: bool = False

    @property
    def maybe_applied(self) -> bool:
        """Whether the step failed or was cancelled with its last command unanswered."""
        return self.unanswered and self.status in (StepStatus.FAILED, StepStatus.CANCELLED)


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One line of an instance's audit log: an input and what was decided.

    Attributes:
        seq: position in the history, from 0.
        at: the ``now`` of the decision.
        input: ``start``, ``reply``, ``event``, ``timer`` or ``operator``.
        type: the message type, timer kind or operator action.
        id: the message or action id (for timers, the step and attempt).
        note: the decision, for people (``ignored: duplicate`` and the like included).
        sent: the ids of the messages sent.
    """

    seq: int
    at: datetime
    input: str
    type: str
    id: str | None
    note: str
    sent: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class SagaInstance(Generic[D]):
    """One saga instance. Immutable: `decide` returns a new one.

    Attributes:
        saga, version: the definition's name and version.
        saga_id: the instance id (also the Kafka key of everything it sends).
        state: the saga's state.
        paused_state: while PAUSED, the state to return to.
        data: the saga data.
        steps: every step's state, in definition order.
        stage: the index of the current stage (a step or parallel group).
        completed: the steps that succeeded, in order of completion.
        timers: the pending timers (the runtime schedules `scheduled_timers`).
        reason: why the saga is compensating, compensated or failed.
        failed_step: the step whose failure caused that, if a step did.
        early: choreography events that arrived before their step was reached (at
            most `MAX_EARLY`; dead-lettered beyond it, and when the saga ends).
        seen: the ids of the inputs processed, to drop duplicates (the runtime keeps
            the latest ``SEEN_WINDOW``; an older duplicate is dropped by the state it
            finds instead: a late reply, a start of a saga that exists).
        history: the audit log, from entry ``history_offset`` on (the runtime keeps the
            latest ``HISTORY_WINDOW`` entries in the instance and moves older ones to
            the saga's history topic).
        history_offset: the ``seq`` of the first entry of ``history``.
        created, updated, ended: timestamps (the ``now`` of decisions).
        traceparent, tracestate: W3C trace context of the saga, set by the runtime (by
            default taken from the start event).
    """

    saga: str
    saga_id: str
    version: int
    state: SagaState
    data: D
    steps: tuple[StepState, ...]
    stage: int = 0
    completed: tuple[str, ...] = ()
    timers: tuple[Timer, ...] = ()
    paused_state: SagaState | None = None
    reason: str | None = None
    failed_step: str | None = None
    early: tuple[Envelope, ...] = ()
    seen: tuple[str, ...] = ()
    history: tuple[HistoryEntry, ...] = ()
    history_offset: int = 0
    created: datetime
    updated: datetime
    ended: datetime | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def history_length(self) -> int:
        """Entries in the whole history (the next entry's ``seq``)."""
        return self.history_offset + len(self.history)

    def step(self, name: str) -> StepState:
        """The state of step ``name`` (raises KeyError)."""
        for state in self.steps:
            if state.name == name:
                return state
        raise KeyError(name)

    @property
    def scheduled_timers(self) -> tuple[Timer, ...]:
        """The timers the runtime must schedule: none while PAUSED."""
        return () if self.state is SagaState.PAUSED else self.timers

    @property
    def failed_in_compensation(self) -> bool:
        """Whether the saga is FAILED because a compensation kept failing."""
        return self.state is SagaState.FAILED and any(
            s.status is StepStatus.COMPENSATION_FAILED for s in self.steps
        )
