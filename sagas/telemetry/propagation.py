"""W3C trace context in Kafka headers, and the saga's own span context.

Headers are aiokafka's ``list[tuple[str, bytes]]``. The saga's span context is not
stored as such: the instance keeps the trace context of its start
(``SagaInstance.traceparent``: the start event's, or one the engine made when the
event had none) and the saga span's id is derived from that trace id and the saga id
(`saga_span_id`), so any engine process, after any restart, computes the same parent
for the spans it makes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, MutableSequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter, Setter
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags, TraceState
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

Headers = MutableSequence[tuple[str, bytes]]

_PROPAGATOR = TraceContextTextMapPropagator()
_FIELDS = ("traceparent", "tracestate")


class _HeaderGetter(Getter[Iterable[tuple[str, bytes | None]]]):
    def get(self, carrier: Iterable[tuple[str, bytes | None]], key: str) -> list[str] | None:
        found = [v.decode("latin-1") for k, v in carrier if k == key and v is not None]
        return found or None

    def keys(self, carrier: Iterable[tuple[str, bytes | None]]) -> list[str]:
        return [k for k, _ in carrier]


class _HeaderSetter(Setter[Headers]):
    def set(self, carrier: Headers, key: str, value: str) -> None:
        carrier[:] = [(k, v) for k, v in carrier if k != key]
        carrier.append((key, value.encode("latin-1")))


_GETTER = _HeaderGetter()
_SETTER = _HeaderSetter()


def inject(headers: Headers, context: Context | None = None) -> None:
    """Put ``traceparent`` (and ``tracestate``) of ``context`` (default: current) in headers."""
    _PROPAGATOR.inject(headers, context=context, setter=_SETTER)


def extract(headers: Iterable[tuple[str, bytes | None]]) -> Context:
    """The context carried by ``headers`` (empty when they carry none or a bad one)."""
    return _PROPAGATOR.extract(list(headers), getter=_GETTER)


def traceparent(context: SpanContext) -> tuple[str, str | None]:
    """``traceparent`` and ``tracestate`` values naming ``context``."""
    value = f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"
    state = context.trace_state.to_header() if context.trace_state else None
    return value, state or None


def parse(value: str | None, state: str | None = None) -> SpanContext | None:
    """The remote span context of a ``traceparent`` value (None when absent or invalid).

    Parsed by hand: it runs for every decision, and the codec has already checked the
    header's form when the message was decoded.
    """
    if not value:
        return None
    parts = value.split("-")
    if len(parts) < 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or parts[0] == "ff":
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3][:2], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(
        trace_id=trace_id,
        span_id=span_id,
        is_remote=True,
        trace_flags=TraceFlags(flags),
        trace_state=TraceState.from_header([state]) if state else None,
    )


def saga_span_id(trace_id: int, saga_id: str) -> int:
    """The saga span's id: a pure function of the trace and the saga (never 0)."""
    digest = hashlib.blake2b(f"{trace_id:032x}/{saga_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") or 1


def saga_context(value: str | None, state: str | None, saga_id: str) -> SpanContext:
    """The saga span's context, from the instance's stored ``traceparent``.

    A saga started by an event without one gets a trace derived from its id
    (`saga_trace_id`): the same in every process and after every restart, so nothing
    about tracing is stored with the instance.
    """
    start = parse(value, state)
    if start is None:
        trace_id = saga_trace_id(saga_id)
        return SpanContext(
            trace_id=trace_id,
            span_id=saga_span_id(trace_id, saga_id),
            is_remote=True,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    return SpanContext(
        trace_id=start.trace_id,
        span_id=saga_span_id(start.trace_id, saga_id),
        is_remote=True,
        trace_flags=start.trace_flags,
        trace_state=start.trace_state,
    )


def saga_trace_id(saga_id: str) -> int:
    """The trace id of a saga whose start event carried no trace context."""
    digest = hashlib.blake2b(f"saga/{saga_id}".encode(), digest_size=16).digest()
    return int.from_bytes(digest, "big") or 1


def new_trace(trace_id: int, saga_id: str) -> str:
    """A ``traceparent`` for a saga whose start carried none: the saga span is the root."""
    span_id = saga_span_id(trace_id, saga_id)
    return f"00-{trace_id:032x}-{span_id:016x}-{int(TraceFlags.SAMPLED):02x}"


def in_context(span_context: SpanContext) -> Context:
    """A context whose current span is ``span_context`` (to parent new spans)."""
    return trace.set_span_in_context(NonRecordingSpan(span_context))


__all__ = [
    "extract",
    "in_context",
    "inject",
    "new_trace",
    "parse",
    "saga_context",
    "saga_span_id",
    "traceparent",
]
