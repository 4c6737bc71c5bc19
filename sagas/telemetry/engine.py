"""The engine's spans and metrics, reported when a batch's transaction commits.

Spans (one trace per saga):

- ``saga <name>``: the saga span, start to end. Created when the saga ends, with the
  stored start time and the span id fixed at the start (`propagation.saga_span_id`),
  so every other engine span can name it as parent from the first decision on.
- ``start <saga>`` / ``process <type>`` / ``timer <kind>`` / ``operator <action>``: one
  span per decision, child of the saga span, with a link to the span of the message
  decided on (a participant's reply span).
- ``send <type>``: one producer span per command and compensation sent, child of its
  decision; its context is what the command's ``traceparent`` carries, so the
  participant's handling span becomes its child.

Spans are exported as soon as a decision is made, metric updates only once the batch's
transaction commits. A crash between the two never leaves an orphan span: a span
whose context went out in a committed record was exported before the commit. The
price: a decision whose transaction did not commit (a crash, a fenced producer) still
shows as a span; the next owner decides again and reports its own spans, and the saga
span of a saga ended in such a batch is exported twice with the same ids.

Why not opentelemetry-instrumentation-aiokafka here: it injects the *current* context
into every ``send`` (our records carry the context of the decision that made them,
inside a transaction that has no current span), and its consumer spans end before the
handler runs (see KAFKA-NOTES), so they could not parent the decision spans anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from opentelemetry.context import Context
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from sagas.contracts import topics
from sagas.contracts.record import Envelope
from sagas.machine import SagaInstance, SagaState, TimerFired
from sagas.machine.instance import StepStatus
from sagas.machine.outputs import Outgoing, OutgoingKind
from sagas.runtime.observer import InFlightSource, LagSource
from sagas.runtime.observer import TraceHeaders as TraceHeaders
from sagas.runtime.transport.records import Consumed
from sagas.telemetry import propagation
from sagas.telemetry.process import ProcessMetrics
from sagas.telemetry.setup import Telemetry, fixed_ids

MS_BUCKETS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000, 60_000,
              300_000, 900_000, 3_600_000, 86_400_000)  # fmt: skip

_SENT_KINDS = (OutgoingKind.COMMAND, OutgoingKind.COMPENSATION)
_OUTCOME = {
    SagaState.COMPLETED: "completed",
    SagaState.COMPENSATED: "compensated",
    SagaState.FAILED: "failed",
}
_FAILED = (StepStatus.FAILED, StepStatus.COMPENSATION_FAILED)


def ns(moment: datetime) -> int:
    return int(moment.timestamp() * 1_000_000_000)


@dataclass
class Pending:
    """One batch of one saga (a `BatchObserver`): the spans of its decisions, and the
    metric updates it makes once its transaction commits."""

    telemetry: EngineTelemetry
    facts: list[Callable[[], None]] = field(default_factory=list)

    def decided(
        self,
        before: SagaInstance[Any] | None,
        after: SagaInstance[Any],
        action: Any,
        record: Consumed | None,
        outgoing: Sequence[Outgoing],
        started_ns: int,
    ) -> list[TraceHeaders | None]:
        return self.telemetry.decided(self, before, after, action, record, outgoing, started_ns)

    def committed(self) -> None:
        """The batch committed: make its metric updates, once."""
        facts, self.facts = self.facts, []
        for fact in facts:
            fact()


class EngineTelemetry:
    """Spans and metrics of one engine process: the runtime's `EngineObserver` with
    telemetry on.

    Args:
        telemetry: the process's providers (must be enabled: give the runtime no
            observer when telemetry is off, and it uses a `NoObserver`).
        topic_prefix: of the physical topic names in attributes.
        in_flight: sagas not ended, by saga name, in the units the engine owns (the
            engine keeps the counts, `add_in_flight_source`; telemetry never reads its
            store).
    """

    def __init__(
        self,
        telemetry: Telemetry,
        topic_prefix: str = "",
        in_flight: InFlightSource | None = None,
    ) -> None:
        self._tracer = telemetry.tracer("sagas.engine")
        self._prefix = topic_prefix
        self._in_flight_counts = in_flight
        self.owned: set[tuple[str, int]] = set()
        self.positions: dict[tuple[str, int], int] = {}
        self._lag_sources: list[LagSource] = []
        meter = telemetry.meter("sagas.engine")
        self._counters = {
            outcome: meter.create_counter(
                f"sagas.{outcome}", unit="{saga}", description=f"Sagas {outcome}."
            )
            for outcome in ("started", "completed", "compensated", "failed")
        }
        self._cycle = meter.create_histogram(
            "sagas.cycle_time",
            unit="ms",
            description="Start to end of a saga, by saga and outcome.",
            explicit_bucket_boundaries_advisory=MS_BUCKETS,
        )
        self._step_duration = meter.create_histogram(
            "sagas.step.duration",
            unit="ms",
            description="First send to success or failure of a step.",
            explicit_bucket_boundaries_advisory=MS_BUCKETS,
        )
        self._step_failures = meter.create_counter(
            "sagas.step.failures", unit="{step}", description="Steps that failed after retries."
        )
        self._dead_letters = meter.create_counter(
            "sagas.dead_letters",
            unit="{message}",
            description="Records sent to a dead-letter topic.",
        )
        meter.create_observable_gauge(
            "sagas.in_flight", [self._in_flight], unit="{saga}", description="Sagas not ended."
        )
        meter.create_observable_gauge(
            "sagas.consumer.lag",
            [self._lag],
            unit="{message}",
            description="Records not yet processed, per partition.",
        )
        ProcessMetrics(meter)

    # -- the saga's trace -------------------------------------------------------------

    def batch(self, saga: str, partition: int) -> Pending:
        """The collector of a new batch; it counts once `Pending.committed` says so."""
        return Pending(self)

    def decided(
        self,
        pending: Pending,
        before: SagaInstance[Any] | None,
        after: SagaInstance[Any],
        action: Any,
        record: Consumed | None,
        outgoing: Sequence[Outgoing],
        started_ns: int,
    ) -> list[TraceHeaders | None]:
        """Spans of one decision; returns the trace headers of each outgoing message."""
        saga_span = propagation.saga_context(after.traceparent, after.tracestate, after.saga_id)
        if saga_span is None:
            return [None] * len(outgoing)
        name, kind, attributes = self._describe(before, after, action, record)
        links = []
        if before is not None and isinstance(action, Envelope):
            source = propagation.parse(action.traceparent, action.tracestate)
            if source is not None:
                links.append(Link(source))
        span = self._tracer.start_span(
            name,
            context=propagation.in_context(saga_span),
            kind=kind,
            attributes=attributes,
            links=links,
            start_time=started_ns,
        )
        self._changes(pending, span, before, after)
        span.end()
        own = propagation.traceparent(span.get_span_context())
        parent = propagation.in_context(span.get_span_context())
        traces: list[TraceHeaders | None] = []
        for out in outgoing:
            if out.kind not in _SENT_KINDS:
                traces.append(own)
                continue
            send = self._tracer.start_span(
                f"send {out.type}",
                context=parent,
                kind=SpanKind.PRODUCER,
                attributes=self._send_attributes(after, out),
            )
            send.end()
            traces.append(propagation.traceparent(send.get_span_context()))
        return traces

    def dead_lettered(self, topic: str, component: str, count: int = 1) -> None:
        """``count`` records went to the dead-letter topic ``topic`` (logical name)."""
        attributes = {
            "messaging.destination.name": topics.physical(self._prefix, topic),
            "sagas.component": component,
        }
        self._dead_letters.add(count, attributes)

    # -- ownership and lag --------------------------------------------------------------

    def assigned(self, saga: str, partition: int) -> None:
        self.owned.add((saga, partition))

    def revoked(self, saga: str, partition: int) -> None:
        self.owned.discard((saga, partition))

    def consumed(self, records: Sequence[Consumed]) -> None:
        """Remember the position after ``records`` (logical topic names)."""
        if records:
            last = records[-1]
            self.positions[(last.topic, last.partition)] = last.offset + 1

    def add_in_flight_source(self, source: InFlightSource) -> None:
        """``source()`` gives the sagas not ended, by saga name, when metrics are collected."""
        self._in_flight_counts = source

    def add_lag_source(self, source: LagSource) -> None:
        """``source()`` yields (topic, partition, group, lag) when metrics are collected."""
        self._lag_sources.append(source)

    # -- details ------------------------------------------------------------------------

    def _describe(
        self,
        before: SagaInstance[Any] | None,
        after: SagaInstance[Any],
        action: Any,
        record: Consumed | None,
    ) -> tuple[str, SpanKind, dict[str, Any]]:
        attributes: dict[str, Any] = {"saga.name": after.saga, "saga.id": after.saga_id}
        if isinstance(action, TimerFired):
            if action.step:
                attributes["saga.step"] = action.step
            attributes["saga.timer"] = action.kind.value
            return f"timer {action.kind.value}", SpanKind.INTERNAL, attributes
        if not isinstance(action, Envelope):
            return f"operator {type(action).__name__}", SpanKind.INTERNAL, attributes
        attributes.update(
            {
                "messaging.system": "kafka",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.message.id": action.id,
                "messaging.destination.name": topics.physical(
                    self._prefix, record.topic if record else topics.inbox(after.saga)
                ),
                "messaging.kafka.message.key": after.saga_id,
            }
        )
        if record is not None:
            attributes["messaging.destination.partition.id"] = str(record.partition)
            attributes["messaging.kafka.offset"] = record.offset
        name = f"start {after.saga}" if before is None else f"process {action.type}"
        return name, SpanKind.CONSUMER, attributes

    def _send_attributes(self, after: SagaInstance[Any], out: Outgoing) -> dict[str, Any]:
        attributes: dict[str, Any] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.operation.name": "send",
            "messaging.destination.name": topics.physical(self._prefix, out.topic),
            "messaging.message.id": out.id,
            "messaging.kafka.message.key": out.key,
            "saga.name": after.saga,
            "saga.id": after.saga_id,
            "saga.compensation": out.kind is OutgoingKind.COMPENSATION,
        }
        if out.step is not None:
            attributes["saga.step"] = out.step
        if out.attempt is not None:
            attributes["saga.attempt"] = out.attempt
        return attributes

    def _changes(
        self,
        pending: Pending,
        span: Span,
        before: SagaInstance[Any] | None,
        after: SagaInstance[Any],
    ) -> None:
        """Step and saga transitions: span status and events, metric facts."""
        name = after.saga
        old = {s.name: s.status for s in before.steps} if before else {}
        for step in after.steps:
            if old.get(step.name, StepStatus.PENDING) is step.status:
                continue
            span.set_attribute("saga.step", step.name)
            if step.status in _FAILED:
                reason = step.error or step.status.value
                span.set_status(Status(StatusCode.ERROR, reason))
                span.add_event("step failed", {"saga.step": step.name, "saga.reason": reason})
            if step.status in (StepStatus.SUCCEEDED, StepStatus.FAILED) and step.started:
                ms = ((step.ended or after.updated) - step.started).total_seconds() * 1000
                attrs = {
                    "saga.name": name,
                    "saga.step": step.name,
                    "saga.outcome": step.status.value,
                }
                pending.facts.append(partial(self._step_duration.record, ms, attrs))
            if step.status is StepStatus.FAILED:
                attrs = {"saga.name": name, "saga.step": step.name}
                pending.facts.append(partial(self._step_failures.add, 1, attrs))
        if before is None:
            pending.facts.append(lambda: self._counters["started"].add(1, {"saga.name": name}))
        was = before.state if before else None
        if after.state is SagaState.COMPENSATING and was is not SagaState.COMPENSATING:
            span.add_event("compensation started", {"saga.reason": after.reason or ""})
        if after.state.ended and not (was is not None and was.ended):
            outcome = _OUTCOME[after.state]
            span.set_attribute("saga.outcome", after.state.value)
            self._saga_span(after, after.ended or after.updated)
            pending.facts.append(lambda: self._ended(after, outcome))

    def _ended(self, instance: SagaInstance[Any], outcome: str) -> None:
        ended = instance.ended or instance.updated
        ms = (ended - instance.created).total_seconds() * 1000
        self._counters[outcome].add(1, {"saga.name": instance.saga})
        self._cycle.record(ms, {"saga.name": instance.saga, "saga.outcome": instance.state.value})

    def _saga_span(self, instance: SagaInstance[Any], ended: datetime) -> None:
        own = propagation.saga_context(instance.traceparent, instance.tracestate, instance.saga_id)
        start = propagation.parse(instance.traceparent, instance.tracestate)
        # A saga whose start event carried no trace is the root of its own trace.
        parent = (
            Context()
            if start is None or start.span_id == own.span_id
            else propagation.in_context(start)
        )
        attributes: dict[str, Any] = {
            "saga.name": instance.saga,
            "saga.id": instance.saga_id,
            "saga.version": instance.version,
            "saga.outcome": instance.state.value,
        }
        if instance.failed_step:
            attributes["saga.step"] = instance.failed_step
        with fixed_ids(own.trace_id, own.span_id):
            span = self._tracer.start_span(
                f"saga {instance.saga}",
                context=parent,
                attributes=attributes,
                start_time=ns(instance.created),
            )
        if instance.state is not SagaState.COMPLETED:
            span.set_status(Status(StatusCode.ERROR, instance.reason or instance.state.value))
        span.end(end_time=ns(ended))

    def _in_flight(self, options: CallbackOptions) -> Iterable[Observation]:
        if self._in_flight_counts is None:
            return
        for saga, count in sorted(self._in_flight_counts().items()):
            yield Observation(count, {"saga.name": saga})

    def _lag(self, options: CallbackOptions) -> Iterable[Observation]:
        for source in self._lag_sources:
            for topic, partition, group, lag in source():
                yield Observation(
                    lag,
                    {
                        "messaging.destination.name": topic,
                        "messaging.destination.partition.id": str(partition),
                        "messaging.consumer.group.name": group,
                    },
                )
