"""Event-driven sagas on Apache Kafka: the authoring API.

A project's sagas, messages, schemas and participants are one `App`, which every
command is pointed at (``--app``, ``SAGAS_APP`` or ``[tool.sagas]``). A saga definition
is data: a `Saga` built from `Start`, `Step` / `Await` / `Parallel`,
`Command`, `On`, `Compensation`, `RetryPolicy` and `Emit`. `decide` runs it, one input
at a time, without I/O; `sagas.testing` runs it against simulated participants.
"""

from sagas.app import App, AppError, load_app
from sagas.definition import (
    Await,
    Command,
    Compensation,
    Emit,
    On,
    Parallel,
    RetryPolicy,
    Saga,
    Start,
    Step,
    StepKind,
    Usage,
)
from sagas.errors import DefinitionError, SagasError
from sagas.machine import (
    Abort,
    Decision,
    Pause,
    Resume,
    Retry,
    RetryNow,
    SagaInstance,
    SagaState,
    SkipStep,
    StepStatus,
    TimerFired,
    Unpause,
    decide,
)

__all__ = [
    "Abort",
    "App",
    "AppError",
    "Await",
    "Command",
    "Compensation",
    "Decision",
    "DefinitionError",
    "Emit",
    "On",
    "Parallel",
    "Pause",
    "Resume",
    "Retry",
    "RetryNow",
    "RetryPolicy",
    "Saga",
    "SagaInstance",
    "SagaState",
    "SagasError",
    "SkipStep",
    "Start",
    "Step",
    "StepKind",
    "StepStatus",
    "TimerFired",
    "Unpause",
    "Usage",
    "decide",
    "load_app",
]
