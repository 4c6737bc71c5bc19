"""Between the core's values and Kafka records: encode decisions, translate inputs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sagas.contracts import actions
from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import OperatorAction as OperatorActionRecord
from sagas.contracts.messages.sagas import OperatorActionKind
from sagas.contracts.record import Envelope, Record
from sagas.definition import Saga
from sagas.machine import (
    Abort,
    Outgoing,
    Pause,
    Resume,
    Retry,
    RetryNow,
    SagaEvent,
    SagaInstance,
    SkipStep,
    Unpause,
)
from sagas.machine.inputs import OperatorAction
from sagas.machine.outputs import OutgoingKind
from sagas.machine.serialize import record_from_dict
from sagas.runtime import topics
from sagas.runtime.deadletter import dead_letter
from sagas.runtime.transport.records import Consumed, OutRecord


def to_record(payload: Record | SagaEvent, classes: ClassMap) -> Record:
    """The Avro-backed record for a payload; outcome events map by their TYPE name."""
    if isinstance(payload, Record):
        return payload
    cls = classes.get(payload.TYPE)
    fields = {f.name: getattr(payload, f.name) for f in dataclasses.fields(payload)}
    return cls(**fields)


def encode(
    out: Outgoing,
    instance: SagaInstance[Any] | None,
    now: datetime,
    codec: Codec,
    classes: ClassMap,
    *,
    key: bytes,
    physical: Callable[[str], str],
    partition: int = -1,
    trace: tuple[str, str | None] | None = None,
) -> OutRecord:
    """One decided message as a Kafka record with CloudEvents headers.

    Commands and compensations are keyed by the saga key ``key``, so the participant's
    reply (keyed like the command) comes back to the saga's partition; outcome events by
    the saga id; domain events by the end event's own key. ``reply_to`` names a physical
    topic (the participant replies there as told): ``physical`` maps the inbox's name.
    ``trace``: the ``traceparent`` / ``tracestate`` of the span that sends it (with
    telemetry on); otherwise the saga's own trace context is passed on. A message the
    instance kept and dropped (`OutgoingKind.DEAD_LETTER`) becomes a dead letter of the
    saga's inbox ``partition``.
    """
    if out.kind is OutgoingKind.DEAD_LETTER:
        return kept_dead_letter(out, codec, physical, partition)
    traceparent, tracestate = trace or (
        (instance.traceparent, instance.tracestate) if instance else (None, None)
    )
    envelope = Envelope(
        id=out.id,
        type=out.type,
        source=out.source,
        time=now,
        payload=to_record(out.payload, classes),
        saga_id=out.saga_id,
        reply_to=physical(out.reply_to) if out.reply_to else None,
        traceparent=traceparent,
        tracestate=tracestate,
        # The commands a compensation undoes, for the participant's tombstone.
        compensates=tuple(out.compensates),
    )
    headers, value = codec.encode(envelope)
    if out.kind in (OutgoingKind.COMMAND, OutgoingKind.COMPENSATION):
        record_key = key
    else:
        record_key = out.key.encode()
    return OutRecord(out.topic, value, key=record_key, headers=tuple(headers))


def kept_dead_letter(
    out: Outgoing, codec: Codec, physical: Callable[[str], str], partition: int = -1
) -> OutRecord:
    """A message an instance kept and dropped (an early event), as a dead letter of its
    saga, with the same ``dlq_*`` headers as any other.

    The record it arrived in is gone (the instance kept the decoded envelope), so it is
    encoded again with the codec: the same headers and payload, possibly under another
    schema id. Its offset is not known: ``dlq_offset`` is ``-1``.
    """
    assert out.envelope is not None  # set on every dead letter
    assert out.reason is not None
    saga = out.source.removeprefix("/sagas/")
    headers, value = codec.encode(out.envelope)
    record = Consumed(topics.inbox(saga), partition, -1, out.key.encode(), value, tuple(headers))
    message = f"{out.envelope.type} {out.envelope.id} kept by saga {out.saga_id}: {out.reason}"
    return dead_letter(
        record,
        physical(record.topic),
        topics.dead_letters(saga),
        out.reason,
        message,
        "EarlyEventDropped",
    )


def operator_action(record: OperatorActionRecord, definition: Saga[Any]) -> OperatorAction:
    """The core's operator action for an `OperatorAction` message.

    Raises:
        ValueError: a SKIP whose ``result_json`` is not a record of this saga.
    """
    common: dict[str, Any] = {"actor": record.actor, "reason": record.reason}
    kind = record.action
    action_id = actions.action_id(record.saga_id, kind, record.requested_at)
    if kind is OperatorActionKind.PAUSE:
        return Pause(id=action_id, **common)
    if kind is OperatorActionKind.UNPAUSE:
        return Unpause(id=action_id, **common)
    if kind is OperatorActionKind.ABORT:
        return Abort(id=action_id, **common)
    if kind is OperatorActionKind.RETRY:
        return Retry(id=action_id, **common)
    if kind is OperatorActionKind.RESUME:
        return Resume(id=action_id, **common)
    if kind is OperatorActionKind.RETRY_NOW:
        return RetryNow(id=action_id, step=record.step, **common)
    if record.step is None:
        raise ValueError("SKIP needs the step to skip")
    result = None
    if record.result_json:
        result = record_from_dict(definition, json.loads(record.result_json))
    return SkipStep(id=action_id, step=record.step, result=result, **common)
