"""The state machine: `decide`, a pure function from (definition, instance, input, now)
to a `Decision` (new instance, outgoing messages, timers). No I/O, clock or randomness.

See docs/concepts.md for the states, the compensation order and the operator actions.
"""

from sagas.machine.decide import decide
from sagas.machine.inputs import (
    Abort,
    Input,
    OperatorAction,
    Pause,
    Resume,
    Retry,
    RetryNow,
    SkipStep,
    TimerFired,
    Unpause,
)
from sagas.machine.instance import (
    HistoryEntry,
    SagaInstance,
    SagaState,
    StepState,
    StepStatus,
    Timer,
    TimerKind,
)
from sagas.machine.outputs import (
    MAX_EARLY,
    Decision,
    Outgoing,
    OutgoingKind,
    SagaCompensated,
    SagaCompleted,
    SagaEvent,
    SagaFailed,
    SagaStarted,
    StepFailed,
    StepSucceeded,
)
from sagas.machine.serialize import (
    envelope_from_dict,
    envelope_to_dict,
    instance_from_dict,
    instance_to_dict,
    record_from_dict,
    record_to_dict,
)

__all__ = [
    "MAX_EARLY",
    "Abort",
    "Decision",
    "HistoryEntry",
    "Input",
    "OperatorAction",
    "Outgoing",
    "OutgoingKind",
    "Pause",
    "Resume",
    "Retry",
    "RetryNow",
    "SagaCompensated",
    "SagaCompleted",
    "SagaEvent",
    "SagaFailed",
    "SagaInstance",
    "SagaStarted",
    "SagaState",
    "SkipStep",
    "StepFailed",
    "StepState",
    "StepStatus",
    "StepSucceeded",
    "Timer",
    "TimerFired",
    "TimerKind",
    "Unpause",
    "decide",
    "envelope_from_dict",
    "envelope_to_dict",
    "instance_from_dict",
    "instance_to_dict",
    "record_from_dict",
    "record_to_dict",
]
