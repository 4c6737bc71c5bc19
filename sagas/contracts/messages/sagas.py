"""Messages of the engine itself: outcomes on ``sagas.events``, the generic failure reply
and operator actions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from sagas.contracts.record import Record


class OperatorActionKind(StrEnum):
    """What an operator asks the engine to do with a saga."""

    RETRY = "RETRY"
    ABORT = "ABORT"
    RESUME = "RESUME"
    PAUSE = "PAUSE"
    UNPAUSE = "UNPAUSE"
    RETRY_NOW = "RETRY_NOW"
    SKIP = "SKIP"


@dataclass(frozen=True, kw_only=True)
class SagaStarted(Record):
    """A saga instance started.

    Attributes:
        saga_id: Identifier of the saga instance.
        saga_name: Name of the saga definition, e.g. order_fulfilment.
        saga_version: Version of the saga definition the instance runs.
        at: When it happened (engine time).
        trigger: ce_type of the event that started it.
    """

    SCHEMA: ClassVar[str] = "sagas.SagaStarted"

    saga_id: str
    saga_name: str
    saga_version: int
    at: datetime
    trigger: str


@dataclass(frozen=True, kw_only=True)
class StepSucceeded(Record):
    """A step of a saga succeeded.

    Attributes:
        saga_id: Identifier of the saga instance.
        saga_name: Name of the saga definition, e.g. order_fulfilment.
        saga_version: Version of the saga definition the instance runs.
        at: When it happened (engine time).
        step: Name of the step.
    """

    SCHEMA: ClassVar[str] = "sagas.StepSucceeded"

    saga_id: str
    saga_name: str
    saga_version: int
    at: datetime
    step: str


@dataclass(frozen=True, kw_only=True)
class StepFailed(Record):
    """A step of a saga failed (after its retries).

    Attributes:
        saga_id: Identifier of the saga instance.
        saga_name: Name of the saga definition, e.g. order_fulfilment.
        saga_version: Version of the saga definition the instance runs.
        at: When it happened (engine time).
        step: Name of the step.
        reason: Why, for people.
    """

    SCHEMA: ClassVar[str] = "sagas.StepFailed"

    saga_id: str
    saga_name: str
    saga_version: int
    at: datetime
    step: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class SagaCompleted(Record):
    """A saga instance completed: every step succeeded.

    Attributes:
        saga_id: Identifier of the saga instance.
        saga_name: Name of the saga definition, e.g. order_fulfilment.
        saga_version: Version of the saga definition the instance runs.
        at: When it happened (engine time).
    """

    SCHEMA: ClassVar[str] = "sagas.SagaCompleted"

    saga_id: str
    saga_name: str
    saga_version: int
    at: datetime


@dataclass(frozen=True, kw_only=True)
class SagaCompensated(Record):
    """A saga instance failed and every completed step was undone.

    Attributes:
        saga_id: Identifier of the saga instance.
        saga_name: Name of the saga definition, e.g. order_fulfilment.
        saga_version: Version of the saga definition the instance runs.
        at: When it happened (engine time).
        step: The step whose failure started the compensation.
        reason: Why, for people.
    """

    SCHEMA: ClassVar[str] = "sagas.SagaCompensated"

    saga_id: str
    saga_name: str
    saga_version: int
    at: datetime
    step: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class SagaFailed(Record):
    """A saga instance could not be compensated; an operator must act.

    Attributes:
        saga_id: Identifier of the saga instance.
        saga_name: Name of the saga definition, e.g. order_fulfilment.
        saga_version: Version of the saga definition the instance runs.
        at: When it happened (engine time).
        step: The step (or compensation) that kept failing, if one did.
        reason: Why, for people.
    """

    SCHEMA: ClassVar[str] = "sagas.SagaFailed"

    saga_id: str
    saga_name: str
    saga_version: int
    at: datetime
    step: str | None = None
    reason: str


@dataclass(frozen=True, kw_only=True)
class CommandFailed(Record):
    """A participant's handler crashed on a command.

    Attributes:
        command_id: ce_id of the command that failed.
        command_type: ce_type of the command that failed.
        reason: What went wrong, for people.
        retryable: Whether sending the same command again may succeed.
    """

    SCHEMA: ClassVar[str] = "sagas.CommandFailed"

    command_id: str
    command_type: str
    reason: str
    retryable: bool


@dataclass(frozen=True, kw_only=True)
class OperatorAction(Record):
    """An operator's instruction for one saga instance.

    Attributes:
        saga_id: The saga instance it concerns.
        action: What to do.
        step: The step it applies to (RETRY, SKIP), if any.
        result_json: For SKIP: the JSON result to record for the skipped step.
        actor: Who asked (user name or service).
        reason: Why, for the audit log.
        requested_at: When the operator asked.
    """

    SCHEMA: ClassVar[str] = "sagas.OperatorAction"

    saga_id: str
    action: OperatorActionKind
    step: str | None = None
    result_json: str | None = None
    actor: str
    reason: str
    requested_at: datetime
