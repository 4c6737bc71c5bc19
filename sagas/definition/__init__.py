"""The definition language: declarative, immutable, validated saga definitions.

A `Saga` lists its start events, its steps (`Step` for orchestration, `Await` for
choreography, `Parallel` for groups) and its end events (`Emit`). See the `Saga`
docstring for the order fulfilment example and docs/concepts.md for the model.
"""

from sagas.definition.policy import RetryPolicy, StepKind, jitter_unit
from sagas.definition.saga import Match, Role, Saga
from sagas.definition.steps import (
    Await,
    Command,
    Compensation,
    Emit,
    On,
    Parallel,
    Start,
    Step,
    format_template,
    template_fields,
)
from sagas.definition.usages import Usage
from sagas.definition.validate import is_record_type

__all__ = [
    "Await",
    "Command",
    "Compensation",
    "Emit",
    "Match",
    "On",
    "Parallel",
    "RetryPolicy",
    "Role",
    "Saga",
    "Start",
    "Step",
    "StepKind",
    "Usage",
    "format_template",
    "is_record_type",
    "jitter_unit",
    "template_fields",
]
