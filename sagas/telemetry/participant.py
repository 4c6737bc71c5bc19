"""Spans and metrics of a participant service (faust-streaming).

faust consumes without ``getmany`` and the aiokafka instrumentation's consumer spans
end before a handler runs (see KAFKA-NOTES), so the context is extracted here from the
record's headers: ``process <command>`` (consumer) is a child of the engine's
``send <command>`` span, and ``send <reply>`` (producer), child of the handling span,
is what the reply's ``traceparent`` carries. The handling span records the business
outcome (the reply type) and is an error when the handler failed (``CommandFailed``).
Domain events a service publishes without a trace context (e.g. ``OrderPlaced``) get a
``send <type>`` producer span: the root of the saga's trace.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from sagas.contracts import deadletters, topics
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope, Record
from sagas.telemetry import propagation
from sagas.telemetry.engine import MS_BUCKETS, TraceHeaders
from sagas.telemetry.logs import saga_scope
from sagas.telemetry.process import ProcessMetrics
from sagas.telemetry.setup import Telemetry


class RecordLike(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> Sequence[tuple[str, bytes | None]]: ...


class OutboundLike(Protocol):
    @property
    def topic(self) -> str: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def headers(self) -> list[tuple[str, bytes]]: ...


@dataclass
class Handling:
    """One record being handled: its span and the reply spans made for it."""

    span: Span
    replies: list[Span] = field(default_factory=list)
    outcome: str = "none"


_HANDLING: ContextVar[Handling | None] = ContextVar("sagas_handling", default=None)


def _header(headers: Sequence[tuple[str, bytes | None]], name: str) -> str | None:
    for key, value in headers:
        if key == name and value is not None:
            return value.decode(errors="replace")
    return None


class ParticipantTelemetry:
    """Spans and metrics of one participant service process."""

    def __init__(self, telemetry: Telemetry, service: str) -> None:
        self.service = service
        self._tracer = telemetry.tracer("sagas.participant")
        meter = telemetry.meter("sagas.participant")
        self._handled = meter.create_counter(
            "sagas.participant.handled",
            unit="{message}",
            description="Commands and events handled, by type and outcome.",
        )
        self._duration = meter.create_histogram(
            "sagas.participant.duration",
            unit="ms",
            description="Handling time of one record, reply sent included.",
            explicit_bucket_boundaries_advisory=MS_BUCKETS,
        )
        self._dead_letters = meter.create_counter(
            "sagas.dead_letters",
            unit="{message}",
            description="Records sent to a dead-letter topic.",
        )
        ProcessMetrics(meter)

    @contextmanager
    def handling(self, record: RecordLike) -> Iterator[Handling]:
        """A consumer span around the handling of ``record``, current inside the block."""
        headers = record.headers
        ce_type = _header(headers, "ce_type") or "unknown"
        ce_id = _header(headers, "ce_id")
        saga_id = _header(headers, "saga_id")
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.operation.name": "process",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
            "messaging.consumer.group.name": self.service,
        }
        if record.key is not None:
            attributes["messaging.kafka.message.key"] = record.key.decode(errors="replace")
        if ce_id is not None:
            attributes["messaging.message.id"] = ce_id
        if saga_id is not None:
            attributes["saga.id"] = saga_id
            if ce_id and ce_id.startswith(saga_id + ":"):
                attributes["saga.step"] = ce_id[len(saga_id) + 1 :].split(":", 1)[0]
        span = self._tracer.start_span(
            f"process {ce_type}",
            context=propagation.extract(headers),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
        handling = Handling(span)
        token = _HANDLING.set(handling)
        began = time.perf_counter()
        try:
            with trace.use_span(span, end_on_exit=False), saga_scope(saga_id):
                yield handling
        except BaseException as exc:
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            _HANDLING.reset(token)
            for reply in handling.replies:
                reply.end()
            span.end()
            labels = {"sagas.service": self.service, "messaging.message.type": ce_type}
            self._handled.add(1, {**labels, "saga.outcome": handling.outcome})
            self._duration.record((time.perf_counter() - began) * 1000, labels)

    def outcome(self, handling: Handling, out: Sequence[OutboundLike]) -> None:
        """The business outcome: the type of what was produced (reply, or dead letter)."""
        if not out:
            return
        first = out[0]
        if topics.is_dead_letters(first.topic):
            handling.outcome = "dead-lettered"
            reason = _header(first.headers, deadletters.REASON) or "dead-lettered"
            handling.span.set_status(Status(StatusCode.ERROR, reason))
        else:
            handling.outcome = _header(first.headers, "ce_type") or "none"
        handling.span.set_attribute("saga.outcome", handling.outcome)

    def reply(self, command: Envelope, payload: Record) -> TraceHeaders | None:
        """A producer span for the reply to ``command``; its trace headers."""
        handling = _HANDLING.get()
        if handling is None:
            return None
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": command.reply_to or "",
            "messaging.message.id": f"{command.id}:reply",
        }
        if command.saga_id:
            attributes["messaging.kafka.message.key"] = command.saga_id
            attributes["saga.id"] = command.saga_id
        span = self._tracer.start_span(
            f"send {payload.SCHEMA}",
            context=trace.set_span_in_context(handling.span),
            kind=SpanKind.PRODUCER,
            attributes=attributes,
        )
        if isinstance(payload, CommandFailed):
            handling.span.set_status(Status(StatusCode.ERROR, payload.reason))
            handling.span.set_attribute("saga.failure.retryable", payload.retryable)
        handling.replies.append(span)
        return propagation.traceparent(span.get_span_context())

    def published(self, record: OutboundLike) -> Span | None:
        """A producer span for a record sent without trace context; injects it. The
        caller ends the span once the record is acknowledged."""
        if any(key == "traceparent" for key, _ in record.headers):
            return None
        ce_type = _header(record.headers, "ce_type") or record.topic
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": record.topic,
        }
        ce_id = _header(record.headers, "ce_id")
        if ce_id is not None:
            attributes["messaging.message.id"] = ce_id
        if record.key is not None:
            attributes["messaging.kafka.message.key"] = record.key.decode(errors="replace")
        span = self._tracer.start_span(
            f"send {ce_type}", kind=SpanKind.PRODUCER, attributes=attributes
        )
        propagation.inject(record.headers, trace.set_span_in_context(span))
        return span

    def dead_lettered(self, topic: str) -> None:
        self._dead_letters.add(
            1, {"messaging.destination.name": topic, "sagas.component": self.service}
        )
