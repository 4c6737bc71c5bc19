"""What `decide` produces: outgoing messages, saga outcome events, and the decision."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Generic, TypeVar

from sagas.contracts.record import Envelope, Record
from sagas.machine.instance import SagaInstance, Timer

D = TypeVar("D")

MAX_EARLY = 32
"""Most choreography events one instance keeps before their step is reached; beyond it,
the oldest is dead-lettered (``early-overflow``)."""


@dataclass(frozen=True, kw_only=True)
class SagaEvent:
    """Base of the outcome events published on ``sagas.events``.

    Plain core values, not `Record` subclasses: the runtime maps each to the Avro class
    of the same ``TYPE`` name (fields match one to one).
    """

    TYPE: ClassVar[str]

    saga_id: str
    saga_name: str
    saga_version: int
    at: datetime


@dataclass(frozen=True, kw_only=True)
class SagaStarted(SagaEvent):
    """The saga started; ``trigger`` is the type of the start event."""

    TYPE: ClassVar[str] = "sagas.SagaStarted"
    trigger: str


@dataclass(frozen=True, kw_only=True)
class StepSucceeded(SagaEvent):
    """A step succeeded."""

    TYPE: ClassVar[str] = "sagas.StepSucceeded"
    step: str


@dataclass(frozen=True, kw_only=True)
class StepFailed(SagaEvent):
    """A step failed after its retries."""

    TYPE: ClassVar[str] = "sagas.StepFailed"
    step: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class SagaCompleted(SagaEvent):
    """Every step succeeded."""

    TYPE: ClassVar[str] = "sagas.SagaCompleted"


@dataclass(frozen=True, kw_only=True)
class SagaCompensated(SagaEvent):
    """Every completed step was undone; ``step`` is the one whose failure caused it
    (empty for an abort or the deadline)."""

    TYPE: ClassVar[str] = "sagas.SagaCompensated"
    step: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class SagaFailed(SagaEvent):
    """The saga needs an operator: a compensation kept failing, or a step after the
    point of no return did."""

    TYPE: ClassVar[str] = "sagas.SagaFailed"
    step: str | None
    reason: str


class OutgoingKind(StrEnum):
    """What an outgoing message is."""

    COMMAND = "COMMAND"
    COMPENSATION = "COMPENSATION"
    DOMAIN_EVENT = "DOMAIN_EVENT"
    SAGA_EVENT = "SAGA_EVENT"
    DEAD_LETTER = "DEAD_LETTER"
    """A message the instance kept and dropped (``envelope``, ``reason``): the runtime
    puts it on the saga's dead-letter topic."""


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """A message to produce, in the transaction that stores the decision.

    Header mapping (CloudEvents Kafka binding): ``ce_id`` = ``id``, ``ce_type`` =
    `type`, ``ce_source`` = ``source``, ``saga_id``, ``reply_to`` (commands only),
    ``compensates`` (compensations only, the ids joined by commas), and the instance's
    ``traceparent`` / ``tracestate``; ``ce_time`` is the decision's now.

    Attributes:
        kind: command, compensation, domain event, saga outcome event or dead letter.
        topic: ``<service>.commands``, the end event's topic, ``sagas.events``, or
            ``sagas.<saga>.dlq`` for dead letters.
        key: the Kafka key: the saga id (the end event's ``key`` when it has one).
        id: deterministic ``ce_id``: ``<saga_id>:<step>:<attempt>`` for commands,
            ``<saga_id>:<step>:compensate:<attempt>`` for compensations; a dead
            letter's is the id of the message dropped.
        payload: the message.
        saga_id: the instance.
        source: ``/sagas/<saga name>``.
        reply_to: the saga's inbox, for commands and compensations.
        step, attempt: for commands and compensations.
        compensates: for compensations, the ids of every command sent for the step
            (``<saga_id>:<step>:1`` to ``<saga_id>:<step>:<attempt>``), so that a
            participant can tell which commands it undoes, including one it has not
            received yet (a slow one the saga gave up on).
        envelope: for dead letters, the message dropped, as it arrived (the runtime
            encodes it again with its codec).
        reason: for dead letters, why it was dropped: ``early-overflow`` (more than
            `MAX_EARLY` events kept), ``step-not-reached`` (the saga ended before its
            step), ``step-already-decided`` (the step had used another event).
    """

    kind: OutgoingKind
    topic: str
    key: str
    id: str
    payload: Record | SagaEvent
    saga_id: str
    source: str
    reply_to: str | None = None
    step: str | None = None
    attempt: int | None = None
    compensates: tuple[str, ...] = ()
    envelope: Envelope | None = None
    reason: str | None = None

    @property
    def type(self) -> str:
        """The ``ce_type``: the Avro full name of the payload."""
        if isinstance(self.payload, SagaEvent):
            return self.payload.TYPE
        return self.payload.SCHEMA


@dataclass(frozen=True, kw_only=True)
class Decision(Generic[D]):
    """The result of one `decide` call.

    Attributes:
        instance: the new instance; ``None`` only when the input concerned no saga (a
            non-start message for an unknown saga id: see ``ignored``).
        outgoing: the messages to produce, in order.
        timers: the complete set of timers to keep scheduled for this saga, replacing
            the previous set (empty while PAUSED): ``instance.scheduled_timers``.
        ignored: why the input changed nothing (duplicate, late, stale...), else None.
            An ignored input is still recorded in the instance's history.
        note: the decision, for people (also the history entry's note).
    """

    instance: SagaInstance[D] | None
    outgoing: tuple[Outgoing, ...]
    timers: tuple[Timer, ...]
    ignored: str | None = None
    note: str = ""
