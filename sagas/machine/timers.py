"""Timers coming due: timeouts, retries and the saga deadline."""

from __future__ import annotations

from typing import Any

from sagas.definition import Step
from sagas.machine.backward import (
    begin_compensation,
    compensation_failed,
    fail_saga,
    send_compensation,
)
from sagas.machine.forward import send, step_failure
from sagas.machine.inputs import TimerFired
from sagas.machine.instance import SagaState, StepStatus, Timer, TimerKind
from sagas.machine.work import Work


def on_timer(w: Work[Any], fired: TimerFired) -> str | None:
    """Apply a fired timer; returns why it is ignored, if it is.

    Only a pending timer counts (kind, step, attempt and due all equal), so a timer
    fired twice, or cancelled meanwhile, changes nothing. While PAUSED a timer stays
    pending and fires on `Unpause`.
    """
    timer = Timer(kind=fired.kind, step=fired.step, attempt=fired.attempt, due=fired.due)
    if timer not in w.timers:
        return "stale timer"
    if w.paused:
        w.note("deferred while paused")
        return None
    w.timers.remove(timer)
    fire(w, timer)
    return None


def fire(w: Work[Any], timer: Timer) -> None:
    """Act on a due timer already removed from the pending set."""
    if timer.kind is TimerKind.DEADLINE:
        _deadline(w)
        return
    assert timer.step is not None  # only the deadline has no step
    leaf = w.saga.step(timer.step)
    state = w.st(timer.step)
    if timer.kind is TimerKind.TIMEOUT and state.status is StepStatus.RUNNING:
        retry = isinstance(leaf, Step) and leaf.effective_retry.retry_on_timeout
        step_failure(w, leaf, "timed out", retryable=retry, bump=False)
    elif timer.kind is TimerKind.RETRY and state.status is StepStatus.RETRYING:
        assert isinstance(leaf, Step)  # only commands are retried
        send(w, leaf, timer.attempt, new_round=False)
    elif timer.kind is TimerKind.COMPENSATION_TIMEOUT and state.status is StepStatus.COMPENSATING:
        compensation_failed(w, leaf, "timed out", bump=False)
    elif (
        timer.kind is TimerKind.COMPENSATION_RETRY
        and state.status is StepStatus.COMPENSATION_RETRYING
    ):
        send_compensation(w, leaf, timer.attempt, new_round=False)
    else:
        w.note(f"{timer.kind} for {timer.step} no longer applies ({state.status})")


def _deadline(w: Work[Any]) -> None:
    if w.phase is not SagaState.RUNNING:
        w.note(f"deadline passed while {w.phase}")
    elif w.forward_only():
        fail_saga(w, None, "deadline passed after the point of no return")
    else:
        begin_compensation(w, None, "deadline passed")
