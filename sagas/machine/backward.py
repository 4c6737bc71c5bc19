"""Compensation: undoing the completed steps, stage by stage in reverse order; the
branches of a parallel stage together."""

from __future__ import annotations

from typing import Any

from sagas.definition import Await, jitter_unit
from sagas.machine.instance import SagaState, StepStatus, TimerKind
from sagas.machine.outputs import SagaCompensated, SagaFailed
from sagas.machine.work import Leaf, Work

_IN_FLIGHT = (StepStatus.RUNNING, StepStatus.COMPENSATING, StepStatus.COMPENSATION_RETRYING)


def begin_compensation(w: Work[Any], step: str | None, reason: str) -> None:
    """Stop going forward and start undoing.

    Steps not started, waiting for a retry, or awaiting an event are cancelled. A command
    still in flight is waited for (its reply or timeout), since the participant may have
    acted on it: compensation starts once nothing is in flight.
    """
    w.set_phase(SagaState.COMPENSATING)
    w.reason = reason
    w.failed_step = step
    w.disarm(None, TimerKind.DEADLINE, TimerKind.RETRY)
    w.note(f"compensating: {reason}")
    for leaf in w.saga.leaves:
        status = w.st(leaf.name).status
        awaiting = isinstance(leaf, Await) and status is StepStatus.RUNNING
        if status in (StepStatus.PENDING, StepStatus.RETRYING) or awaiting:
            w.disarm(leaf.name)
            w.put(
                leaf.name,
                status=StepStatus.CANCELLED,
                ended=w.now if status != StepStatus.PENDING else None,
            )
    advance_compensation(w)


def to_undo(w: Work[Any], leaf: Leaf) -> bool:
    """Whether ``leaf`` is still to be compensated: it has a compensation, and it
    succeeded or may have been applied (it failed or was cancelled with its last command
    unanswered: a participant that was slow may have done the work)."""
    state = w.st(leaf.name)
    done = state.status is StepStatus.SUCCEEDED or state.maybe_applied
    return leaf.compensation is not None and done


def advance_compensation(w: Work[Any]) -> None:
    """Undo the last stage with steps to undo, or finish when none is left.

    Stages are undone in reverse order. The branches of a parallel stage are
    independent, so their compensations are sent together; the stage before is undone
    once all of them are done (and once no command is in flight anywhere).
    """
    if w.paused or w.state is not SagaState.COMPENSATING:
        return
    if any(s.status in _IN_FLIGHT for s in w.steps.values()):
        return
    for stage in reversed(w.saga.stages):
        pending = [leaf for leaf in stage if to_undo(w, leaf)]
        for leaf in pending:
            if w.state is SagaState.COMPENSATING:  # a builder that raised may fail the saga
                send_compensation(w, leaf, w.st(leaf.name).comp_attempt + 1, new_round=True)
        if pending:
            return
    w.set_phase(SagaState.COMPENSATED)
    w.timers = []
    w.note("compensated")
    w.publish(w.saga.on_compensated, "compensated")
    w.emit(SagaCompensated, step=w.failed_step or "", reason=w.reason or "")


def send_compensation(w: Work[Any], leaf: Leaf, attempt: int, *, new_round: bool) -> None:
    """Send attempt ``attempt`` of ``leaf``'s compensation and arm its timeout."""
    comp = leaf.compensation
    assert comp is not None  # callers only pick steps that have one
    state = w.st(leaf.name)
    sends = 1 if new_round else state.comp_sends + 1
    try:
        command = comp.command.build(w.data)
    except Exception as exc:  # an author's function: the compensation fails, visibly
        w.put(leaf.name, comp_attempt=attempt, comp_sends=sends)
        compensation_failed(w, leaf, f"cannot build {comp.command.type.SCHEMA}: {exc!r}")
        return
    w.put(leaf.name, status=StepStatus.COMPENSATING, comp_attempt=attempt, comp_sends=sends)
    w.compensation(leaf, attempt, command)
    w.note(f"compensate {leaf.name} (attempt {attempt})")
    if comp.timeout is not None:
        w.arm(TimerKind.COMPENSATION_TIMEOUT, leaf.name, attempt, comp.timeout)


def on_compensated(w: Work[Any], leaf: Leaf) -> str | None:
    """A compensation success reply arrived; returns why it is ignored, if it is."""
    status = w.st(leaf.name).status
    if status not in (StepStatus.COMPENSATING, StepStatus.COMPENSATION_RETRYING):
        return f"late compensation reply for {leaf.name} ({status})"
    w.disarm(leaf.name)
    w.put(leaf.name, status=StepStatus.COMPENSATED, error=None)
    w.note(f"{leaf.name} compensated")
    advance_compensation(w)
    return None


def compensation_failed(w: Work[Any], leaf: Leaf, reason: str, *, bump: bool = True) -> None:
    """A compensation send failed or timed out: retry it, or leave the saga FAILED."""
    comp = leaf.compensation
    assert comp is not None
    w.disarm(leaf.name, TimerKind.COMPENSATION_TIMEOUT)
    state = w.st(leaf.name)
    if comp.retry.allows(state.comp_sends):
        attempt = state.comp_attempt + 1 if bump else state.comp_attempt
        unit = jitter_unit(w.saga_id, leaf.name, "compensate", attempt, state.comp_sends)
        delay = comp.retry.delay(state.comp_sends, unit)
        w.put(leaf.name, status=StepStatus.COMPENSATION_RETRYING, error=reason)
        w.arm(TimerKind.COMPENSATION_RETRY, leaf.name, attempt, delay)
        w.note(f"compensation of {leaf.name} failed ({reason}); retry in {delay}")
        return
    w.put(leaf.name, status=StepStatus.COMPENSATION_FAILED, error=reason, ended=w.now)
    fail_saga(w, leaf.name, f"compensation of {leaf.name} failed: {reason}")


def fail_saga(w: Work[Any], step: str | None, reason: str) -> None:
    """Leave the saga FAILED for an operator.

    Commands in flight keep their timeouts, and compensations under way (the other
    branches of a parallel stage) keep their retries: they carry on to their own ends,
    so that `Resume` has only the failed ones to send again.
    """
    w.set_phase(SagaState.FAILED)
    w.reason = reason
    w.failed_step = step
    w.disarm(None, TimerKind.DEADLINE, TimerKind.RETRY)
    w.note(f"failed: {reason}")
    w.emit(SagaFailed, step=step, reason=reason)
