"""`decide`: the pure transition function of the saga engine."""

from __future__ import annotations

from datetime import datetime
from typing import TypeVar

from sagas.contracts.record import Envelope
from sagas.definition import Saga, format_template
from sagas.errors import DefinitionError
from sagas.machine.forward import advance
from sagas.machine.inputs import Input, OperatorAction, TimerFired
from sagas.machine.instance import SagaInstance, SagaState, StepState, TimerKind
from sagas.machine.operate import operate
from sagas.machine.outputs import Decision, SagaStarted
from sagas.machine.route import on_envelope
from sagas.machine.timers import on_timer
from sagas.machine.work import Work

D = TypeVar("D")


def decide(
    definition: Saga[D], instance: SagaInstance[D] | None, input: Input, now: datetime
) -> Decision[D]:
    """Apply one input to one saga instance.

    Pure: no I/O, no clock (``now`` is given), no randomness (retry jitter is derived
    from the saga id, step and attempt). The same arguments always give an equal result.

    Args:
        definition: the saga definition (of the instance's version).
        instance: the instance, or ``None`` when the saga id is not known yet.
        input: a start event, reply or choreography event (an `Envelope`), a
            `TimerFired`, or an `OperatorAction`.
        now: the current time (timezone-aware), recorded in the history and timestamps.

    Returns:
        The new instance, the messages to send, and the timers to keep scheduled. An
        input that changes nothing (duplicate, late reply, stale timer, rejected action)
        has ``ignored`` set and is recorded in the history; without an instance, a
        non-start input gives ``instance=None``.

    Raises:
        DefinitionError: the instance belongs to another saga or definition version.
    """
    if instance is None:
        return _start(definition, input, now)
    if (instance.saga, instance.version) != (definition.name, definition.version):
        raise DefinitionError(
            f"saga {definition.name!r} v{definition.version} cannot decide for an instance "
            f"of {instance.saga!r} v{instance.version}"
        )
    w = Work(definition, instance, now)
    kind, type_, input_id = describe(input)
    if input_id is not None and input_id in instance.seen:
        return w.decision(kind, type_, input_id, ignored="duplicate")
    if isinstance(input, Envelope):
        if input.saga_id is not None and input.saga_id != instance.saga_id:
            why: str | None = f"for saga {input.saga_id}, not {instance.saga_id}"
        elif definition.start_for(input.payload.SCHEMA) is not None:
            why = "start event for a saga that already exists"
        else:
            why = on_envelope(w, input)
    elif isinstance(input, TimerFired):
        why = on_timer(w, input)
    else:
        rejected = operate(w, input)
        why = None if rejected is None else f"rejected: {rejected}"
    return w.decision(kind, type_, input_id, ignored=why)


def describe(input: Input) -> tuple[str, str, str | None]:
    """The history's view of an input: its kind, type and id."""
    if isinstance(input, Envelope):
        return "message", input.type, input.id
    if isinstance(input, TimerFired):
        return (
            "timer",
            input.kind.value,
            f"{input.step or '-'}:{input.attempt}@{input.due.isoformat()}",
        )
    assert isinstance(input, OperatorAction)
    return "operator", type(input).__name__, input.id


def _start(definition: Saga[D], input: Input, now: datetime) -> Decision[D]:
    start = definition.start_for(input.payload.SCHEMA) if isinstance(input, Envelope) else None
    if start is None or not isinstance(input, Envelope):
        return Decision(instance=None, outgoing=(), timers=(), ignored="no saga instance")
    try:
        saga_id = format_template(start.saga_id, input.payload)
        data = start.init(input.payload)
    except Exception as exc:  # an author's function: the start event is rejected, visibly
        return Decision(instance=None, outgoing=(), timers=(), ignored=f"start rejected: {exc!r}")
    instance = SagaInstance(
        saga=definition.name,
        saga_id=saga_id,
        version=definition.version,
        state=SagaState.RUNNING,
        data=data,
        steps=tuple(StepState(name=leaf.name) for leaf in definition.leaves),
        created=now,
        updated=now,
        traceparent=input.traceparent,
        tracestate=input.tracestate,
    )
    w = Work(definition, instance, now)
    w.note(f"started by {input.type}")
    w.emit(SagaStarted, trigger=input.type)
    if definition.deadline is not None:
        w.arm(TimerKind.DEADLINE, None, 0, definition.deadline)
    advance(w)
    return w.decision("message", input.type, input.id)
