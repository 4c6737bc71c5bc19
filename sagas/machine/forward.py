"""Going forward: entering stages, sending commands, handling replies and events."""

from __future__ import annotations

from typing import Any

from sagas.contracts.record import Record
from sagas.definition import Await, On, Step, StepKind, jitter_unit
from sagas.machine.backward import (
    advance_compensation,
    begin_compensation,
    fail_saga,
    send_compensation,
)
from sagas.machine.instance import SagaState, StepStatus, TimerKind
from sagas.machine.outputs import SagaCompleted, StepFailed, StepSucceeded
from sagas.machine.work import Leaf, Work

_DONE = (StepStatus.SUCCEEDED, StepStatus.SKIPPED)


def proceed(w: Work[Any]) -> None:
    """Move on in whichever direction the saga is going."""
    if w.phase is SagaState.RUNNING:
        advance(w)
    elif w.phase is SagaState.COMPENSATING:
        advance_compensation(w)


def advance(w: Work[Any]) -> None:
    """Enter stages until one is still running; complete the saga after the last."""
    stages = w.saga.stages
    while not w.paused and w.state is SagaState.RUNNING and w.stage < len(stages):
        for leaf in stages[w.stage]:
            if w.state is SagaState.RUNNING and w.st(leaf.name).status is StepStatus.PENDING:
                enter(w, leaf)
        if w.state is not SagaState.RUNNING:
            return
        if any(w.st(leaf.name).status not in _DONE for leaf in stages[w.stage]):
            return
        w.stage += 1
    if not w.paused and w.state is SagaState.RUNNING:
        w.set_phase(SagaState.COMPLETED)
        w.timers = []
        w.note("completed")
        w.publish(w.saga.on_completed, "completed")
        w.emit(SagaCompleted)


def enter(w: Work[Any], leaf: Leaf) -> None:
    """Start one step: skip it, send its command, or await its event."""
    try:
        skip = leaf.when is not None and not leaf.when(w.data)
    except Exception as exc:  # an author's function: the step fails, visibly
        w.put(leaf.name, started=w.now)
        step_failed(w, leaf, f"condition raised {exc!r}")
        return
    if skip:
        w.put(leaf.name, status=StepStatus.SKIPPED, ended=w.now)
        w.note(f"{leaf.name} skipped")
        return
    if isinstance(leaf, Step):
        send(w, leaf, w.st(leaf.name).attempt + 1, new_round=True)
        return
    w.put(leaf.name, status=StepStatus.RUNNING, attempt=1, sends=1, started=w.now)
    w.note(f"await {leaf.event.type.SCHEMA} for {leaf.name}")
    if leaf.timeout is not None:
        w.arm(TimerKind.TIMEOUT, leaf.name, 1, leaf.timeout)
    for envelope in list(w.early):
        if w.st(leaf.name).status is StepStatus.RUNNING and _on_for(leaf, envelope.payload):
            w.early.remove(envelope)
            w.note(f"using early {envelope.type} {envelope.id}")
            on_message(w, leaf, envelope.payload)


def send(w: Work[Any], leaf: Step[Any], attempt: int, *, new_round: bool) -> None:
    """Send attempt ``attempt`` of ``leaf``'s command and arm its timeout."""
    state = w.st(leaf.name)
    sends = 1 if new_round else state.sends + 1
    w.put(leaf.name, attempt=attempt, sends=sends, started=state.started or w.now)
    try:
        command = leaf.command.build(w.data)
    except Exception as exc:  # an author's function: the step fails, visibly
        w.put(leaf.name, status=StepStatus.RUNNING)
        step_failed(w, leaf, f"cannot build {leaf.command.type.SCHEMA}: {exc!r}")
        return
    w.put(leaf.name, status=StepStatus.RUNNING, unanswered=True)
    w.command(leaf, attempt, command)
    w.note(f"send {leaf.command.type.SCHEMA} for {leaf.name} (attempt {attempt})")
    if leaf.timeout is not None:
        w.arm(TimerKind.TIMEOUT, leaf.name, attempt, leaf.timeout)


def _on_for(leaf: Leaf, record: Record) -> tuple[On[Any, Any], bool] | None:
    """The declaration matching ``record`` in ``leaf`` and whether it is a success."""
    for on in leaf.success:
        if on.type.SCHEMA == record.SCHEMA:
            return on, True
    for on in leaf.failure:
        if on.type.SCHEMA == record.SCHEMA:
            return on, False
    return None


def on_message(w: Work[Any], leaf: Leaf, record: Record) -> str | None:
    """A reply or event for ``leaf`` arrived; returns why it is ignored, if it is."""
    status = w.st(leaf.name).status
    found = _on_for(leaf, record)
    assert found is not None  # the caller matched the type to this step
    on, success = found
    if isinstance(leaf, Await) and status is StepStatus.PENDING and w.phase is SagaState.RUNNING:
        return "early"
    if success and _undo_when_late(w, leaf):
        succeed_late(w, leaf, on, record)
        return None
    accepted = (StepStatus.RUNNING, StepStatus.RETRYING) if success else (StepStatus.RUNNING,)
    if status not in accepted:
        if not success and w.st(leaf.name).unanswered:
            return answered_late(w, leaf, record)
        return f"late {record.SCHEMA} for {leaf.name} ({status})"
    w.put(leaf.name, unanswered=False)  # the last command sent has its answer
    if success:
        succeed(w, leaf, on, record)
    else:
        try:
            w.data = on.apply(w.data, record)
        except Exception as exc:  # an author's function: note it, the step fails anyway
            w.note(f"failure update raised {exc!r}")
        retryable = isinstance(leaf, Step) and record.__class__ in leaf.effective_retry.retry_on
        step_failure(w, leaf, f"{record.SCHEMA} received", retryable=retryable, bump=True)
    return None


def succeed(w: Work[Any], leaf: Leaf, on: On[Any, Any] | None, record: Record | None) -> None:
    """Record ``leaf``'s success, update the data, and move on."""
    w.disarm(leaf.name)
    w.put(
        leaf.name,
        status=StepStatus.SUCCEEDED,
        ended=w.now,
        reply=record,
        error=None,
        unanswered=False,
    )
    w.completed.append(leaf.name)
    w.note(f"{leaf.name} succeeded")
    w.emit(StepSucceeded, step=leaf.name)
    update_error: str | None = None
    if on is not None and record is not None:
        try:
            w.data = on.apply(w.data, record)
        except Exception as exc:  # the step is done; the saga cannot go on without its data
            update_error = f"update after {record.SCHEMA} raised {exc!r}"
    if w.phase is SagaState.COMPENSATING and w.is_pivot(leaf.name):
        # The pivot was in flight when compensation began; it succeeded, so the saga is
        # past its point of no return: nothing was compensated yet, go forward instead.
        w.note("pivot succeeded: compensation called off")
        w.set_phase(SagaState.RUNNING)
        w.reason = w.failed_step = None
        for state in list(w.steps.values()):
            if state.status is StepStatus.CANCELLED and state.ended is None:
                w.put(state.name, status=StepStatus.PENDING)
    if update_error is not None and w.phase is SagaState.RUNNING:
        step_failed(w, leaf, update_error)
        return
    proceed(w)


def _undo_when_late(w: Work[Any], leaf: Leaf) -> bool:
    """Whether a success for ``leaf`` now is late work to undo: the step failed or was
    cancelled after its command was sent (or its event awaited), and it has not been
    compensated."""
    state = w.st(leaf.name)
    if leaf.compensation is None or state.status not in (StepStatus.FAILED, StepStatus.CANCELLED):
        return False
    return isinstance(leaf, Await) or state.attempt > 0


def succeed_late(w: Work[Any], leaf: Leaf, on: On[Any, Any], record: Record) -> None:
    """A success for a step that failed or was cancelled: the participant did the work
    after all. It is recorded as a success (its data update included, which the
    compensation may need), then undone: in its stage's turn while compensating, at once
    otherwise, also after the saga ended (which stays as it is: only the step changes).
    """
    w.disarm(leaf.name)
    w.put(
        leaf.name,
        status=StepStatus.SUCCEEDED,
        ended=w.now,
        reply=record,
        error=None,
        unanswered=False,
    )
    w.completed.append(leaf.name)
    w.note(f"{leaf.name} succeeded late: compensate it")
    w.emit(StepSucceeded, step=leaf.name)
    try:
        w.data = on.apply(w.data, record)
    except Exception as exc:  # an author's function: note it, the step is undone anyway
        w.note(f"update after {record.SCHEMA} raised {exc!r}")
    if w.phase is SagaState.COMPENSATING:
        advance_compensation(w)
    elif not w.paused:  # a paused saga is running or compensating; running, it has no
        # failed or cancelled compensatable step (that would have started compensation)
        send_compensation(w, leaf, w.st(leaf.name).comp_attempt + 1, new_round=True)


def answered_late(w: Work[Any], leaf: Leaf, record: Record) -> str | None:
    """A failure reply to the last command of ``leaf`` after it gave up waiting for it
    (it timed out: waiting to resend, failed, or cancelled): the participant did not
    apply it, so it is not to be undone. Returns why it is ignored, if it is."""
    status = w.st(leaf.name).status
    if status not in (StepStatus.RETRYING, StepStatus.FAILED, StepStatus.CANCELLED):
        return f"late {record.SCHEMA} for {leaf.name} ({status})"
    w.put(leaf.name, unanswered=False)
    w.note(f"{leaf.name}: {record.SCHEMA} answers its last command: not applied")
    if w.phase is SagaState.COMPENSATING:
        advance_compensation(w)
    return None


def step_failure(w: Work[Any], leaf: Leaf, reason: str, *, retryable: bool, bump: bool) -> None:
    """A send of ``leaf`` failed or timed out: schedule a retry, or fail the step."""
    w.disarm(leaf.name, TimerKind.TIMEOUT)
    state = w.st(leaf.name)
    if isinstance(leaf, Step) and w.phase is SagaState.RUNNING:
        retryable = retryable or leaf.effective_kind is StepKind.RETRIABLE
        policy = leaf.effective_retry
        if retryable and policy.allows(state.sends):
            attempt = state.attempt + 1 if bump else state.attempt
            unit = jitter_unit(w.saga_id, leaf.name, attempt, state.sends)
            delay = policy.delay(state.sends, unit)
            w.put(leaf.name, status=StepStatus.RETRYING, error=reason)
            w.arm(TimerKind.RETRY, leaf.name, attempt, delay)
            w.note(f"{leaf.name}: {reason}; retry in {delay}")
            return
    step_failed(w, leaf, reason)


def step_failed(w: Work[Any], leaf: Leaf, reason: str) -> None:
    """``leaf`` failed for good: compensate, or fail the saga past the point of no return."""
    w.disarm(leaf.name)
    w.put(leaf.name, status=StepStatus.FAILED, ended=w.now, error=reason)
    w.emit(StepFailed, step=leaf.name, reason=reason)
    if w.phase is SagaState.COMPENSATING:
        w.note(f"{leaf.name} failed while compensating: {reason}")
        advance_compensation(w)
    elif w.phase is SagaState.RUNNING:
        if w.saga.stage_of(leaf.name) >= w.saga.forward_only_from:
            fail_saga(w, leaf.name, f"{leaf.name} failed after the point of no return: {reason}")
        else:
            begin_compensation(w, leaf.name, f"{leaf.name} failed: {reason}")
