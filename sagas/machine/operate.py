"""Operator actions: pause, unpause, abort, retry, resume, retry now, skip a step."""

from __future__ import annotations

from typing import Any

from sagas.definition import Step
from sagas.machine.backward import advance_compensation, begin_compensation, send_compensation
from sagas.machine.forward import advance, proceed, send, succeed
from sagas.machine.inputs import (
    Abort,
    OperatorAction,
    Pause,
    Resume,
    Retry,
    RetryNow,
    SkipStep,
    Unpause,
)
from sagas.machine.instance import SagaState, StepStatus, TimerKind
from sagas.machine.timers import fire
from sagas.machine.work import Work

_FORWARD_OPEN = (StepStatus.RUNNING, StepStatus.RETRYING, StepStatus.FAILED)
_BACKWARD_OPEN = (
    StepStatus.COMPENSATING,
    StepStatus.COMPENSATION_RETRYING,
    StepStatus.COMPENSATION_FAILED,
)


def operate(w: Work[Any], action: OperatorAction) -> str | None:
    """Apply an operator action; returns why it is rejected, if it is."""
    w.note(
        f"{type(action).__name__} by {action.actor}"
        + (f": {action.reason}" if action.reason else "")
    )
    if isinstance(action, Pause):
        return _pause(w)
    if isinstance(action, Unpause):
        return _unpause(w)
    if isinstance(action, Abort):
        return _abort(w, action)
    if isinstance(action, Retry):
        return _retry(w)
    if isinstance(action, Resume):
        return _resume(w)
    if isinstance(action, RetryNow):
        return _retry_now(w, action.step)
    if isinstance(action, SkipStep):
        return _skip(w, action)
    return f"unknown operator action {type(action).__name__}"


def _pause(w: Work[Any]) -> str | None:
    if w.state not in (SagaState.RUNNING, SagaState.COMPENSATING):
        return f"cannot pause a {w.state} saga"
    w.paused_state, w.state = w.state, SagaState.PAUSED
    return None


def _unpause(w: Work[Any]) -> str | None:
    if not w.paused or w.paused_state is None:
        return f"cannot unpause a {w.state} saga"
    w.state, w.paused_state = w.paused_state, None
    while True:  # fire what came due while paused, earliest first
        due = sorted((t for t in w.timers if t.due <= w.now), key=lambda t: t.due)
        if not due:
            break
        w.timers.remove(due[0])
        fire(w, due[0])
    proceed(w)
    return None


def _abort(w: Work[Any], action: Abort) -> str | None:
    if w.phase is not SagaState.RUNNING:
        return f"cannot abort a {w.phase} saga"
    if w.forward_only():
        return "cannot abort after the point of no return"
    begin_compensation(
        w, None, f"aborted by {action.actor}" + (f": {action.reason}" if action.reason else "")
    )
    return None


def _retry(w: Work[Any]) -> str | None:
    if w.state is not SagaState.FAILED or _failed_backward(w):
        return "retry applies to a saga FAILED going forward (use resume after compensation)"
    w.set_phase(SagaState.RUNNING)
    w.ended = w.reason = w.failed_step = None
    for leaf in w.saga.stages[w.stage]:
        state = w.st(leaf.name)
        if state.status in (StepStatus.FAILED, StepStatus.RETRYING):
            w.disarm(leaf.name)
            if isinstance(leaf, Step):
                send(w, leaf, state.attempt + 1, new_round=True)
            else:
                w.put(leaf.name, status=StepStatus.PENDING)
    advance(w)
    return None


def _resume(w: Work[Any]) -> str | None:
    if w.state is not SagaState.FAILED or not _failed_backward(w):
        return "resume applies to a saga FAILED in compensation"
    w.set_phase(SagaState.COMPENSATING)
    w.ended = None
    for leaf in w.saga.leaves:
        state = w.st(leaf.name)
        if state.status is StepStatus.COMPENSATION_FAILED:
            send_compensation(w, leaf, state.comp_attempt + 1, new_round=True)
    advance_compensation(w)
    return None


def _failed_backward(w: Work[Any]) -> bool:
    return any(s.status is StepStatus.COMPENSATION_FAILED for s in w.steps.values())


def _retry_now(w: Work[Any], step: str | None) -> str | None:
    if w.paused:
        return "cannot retry now while paused"
    kinds = (TimerKind.RETRY, TimerKind.COMPENSATION_RETRY)
    due = [t for t in w.timers if t.kind in kinds and (step is None or t.step == step)]
    if not due:
        return "no retry is waiting" + (f" for {step}" if step else "")
    for timer in due:
        w.timers.remove(timer)
        fire(w, timer)
    return None


def _skip(w: Work[Any], action: SkipStep) -> str | None:
    if action.step not in w.steps:
        return f"no step {action.step!r}"
    leaf, state = w.saga.step(action.step), w.st(action.step)
    if state.status in _BACKWARD_OPEN:
        w.disarm(leaf.name)
        w.put(leaf.name, status=StepStatus.COMPENSATED, error=None)
        if w.state is SagaState.FAILED:
            w.set_phase(SagaState.COMPENSATING)
            w.ended = None
        advance_compensation(w)
        return None
    forward = w.phase is SagaState.RUNNING or (
        w.state is SagaState.FAILED and not _failed_backward(w)
    )
    if not forward or state.status not in _FORWARD_OPEN or w.saga.stage_of(leaf.name) != w.stage:
        return f"cannot skip {leaf.name} ({state.status}) while {w.state}"
    on = None
    if action.result is not None:
        on = next((o for o in leaf.success if o.type.SCHEMA == action.result.SCHEMA), None)
        if on is None:
            return f"{action.result.SCHEMA} is not a success reply of {leaf.name}"
    if w.state is SagaState.FAILED:
        w.set_phase(SagaState.RUNNING)
        w.ended = w.reason = w.failed_step = None
    succeed(w, leaf, on, action.result)
    return None
