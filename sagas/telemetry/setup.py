"""Build the tracer and meter providers of one process from `TelemetrySettings`.

`setup` returns a `Telemetry` handle; nothing happens at import time and no global is
set unless an entry point asks for it (`Telemetry.install_global`). With telemetry
off the handle holds the API's no-op providers and `enabled` is False, so hooks skip
their work altogether: nothing is exported and nothing measurable is spent.

Modes (``SAGAS_TELEMETRY``): ``otlp`` (gRPC or HTTP by ``OTEL_EXPORTER_OTLP_PROTOCOL``;
endpoint, headers and timeouts from the standard ``OTEL_EXPORTER_OTLP_*`` variables,
read by the exporters themselves), ``console`` (stdout), ``file`` (JSON lines, one file
per process) and ``off``. Unset: ``otlp`` when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set,
else ``off``; ``OTEL_SDK_DISABLED=true`` always means off.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    ConsoleMetricExporter,
    MetricExporter,
    MetricReader,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from sagas.settings import TelemetrySettings
from sagas.telemetry.files import JsonLines, JsonLinesMetricExporter, JsonLinesSpanExporter

INSTRUMENTATION = "sagas"

# (trace id, span id) the next span must take; see `SagaIds`.
_NEXT_IDS: ContextVar[tuple[int, int] | None] = ContextVar("sagas_next_ids", default=None)


class SagaIds(RandomIdGenerator):
    """Random ids, except inside `fixed_ids`: then the ids given there.

    The saga span covers the saga from start to end, across engine restarts and
    processes, so it cannot be held open in memory. Its span id is fixed when the saga
    starts (derived from the trace id and the saga id) so that every decision can name
    it as parent from the first one on; the span itself is created when the saga ends,
    with the saga's stored start time. The SDK takes ids only from its `IdGenerator`,
    which is public API: this one hands out the fixed ids for that one span.
    """

    def generate_span_id(self) -> int:
        fixed = _NEXT_IDS.get()
        return fixed[1] if fixed is not None else super().generate_span_id()

    def generate_trace_id(self) -> int:
        fixed = _NEXT_IDS.get()
        return fixed[0] if fixed is not None else super().generate_trace_id()


@contextmanager
def fixed_ids(trace_id: int, span_id: int) -> Iterator[None]:
    """Spans started in this block (with a `SagaIds` provider) get these ids."""
    token = _NEXT_IDS.set((trace_id, span_id))
    try:
        yield
    finally:
        _NEXT_IDS.reset(token)


@dataclass
class Telemetry:
    """The providers of one process. `shutdown` flushes and is idempotent.

    Attributes:
        service: the ``service.name`` of the process.
        mode: otlp, console, file, memory (tests) or off.
        enabled: False when off: hooks must then do nothing.
    """

    service: str
    mode: str
    tracer_provider: trace.TracerProvider
    meter_provider: metrics.MeterProvider
    _sdk: list[TracerProvider | MeterProvider] = field(default_factory=list)
    _closed: bool = False

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def tracer(self, name: str = INSTRUMENTATION) -> trace.Tracer:
        return self.tracer_provider.get_tracer(name)

    def meter(self, name: str = INSTRUMENTATION) -> metrics.Meter:
        return self.meter_provider.get_meter(name)

    def install_global(self) -> None:
        """Make these the API's global providers (entry points only, once per process)."""
        if self.enabled:
            trace.set_tracer_provider(self.tracer_provider)
            metrics.set_meter_provider(self.meter_provider)

    def shutdown(self) -> None:
        """Export what is pending and stop the exporters (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for provider in self._sdk:
            provider.shutdown()


def disabled(service: str = INSTRUMENTATION) -> Telemetry:
    """The no-op handle."""
    return Telemetry(service, "off", trace.NoOpTracerProvider(), metrics.NoOpMeterProvider())


def mode_of(settings: TelemetrySettings) -> str:
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off"
    if settings.mode is not None:
        return settings.mode
    return "otlp" if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") else "off"


def resource(service: str) -> Resource:
    """``service.name`` (``OTEL_SERVICE_NAME`` wins), instance id, ``OTEL_RESOURCE_ATTRIBUTES``."""
    attributes: dict[str, str | int] = {
        SERVICE_INSTANCE_ID: f"{socket.gethostname()}-{os.getpid()}",
        "process.pid": os.getpid(),
    }
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes[SERVICE_NAME] = service
    return Resource.create(attributes)


def setup(
    service: str,
    settings: TelemetrySettings,
    *,
    span_exporters: Sequence[SpanExporter] = (),
    metric_readers: Sequence[MetricReader] = (),
) -> Telemetry:
    """The providers for ``service`` as configured.

    Args:
        service: default ``service.name`` (``OTEL_SERVICE_NAME`` overrides it).
        settings: the telemetry settings.
        span_exporters, metric_readers: extra sinks (tests pass in-memory ones); given
            any, telemetry is on even when the settings say off.
    """
    mode = mode_of(settings)
    if mode == "off" and not span_exporters and not metric_readers:
        return disabled(service)
    res = resource(service)
    processors: list[SpanProcessor] = [SimpleSpanProcessor(e) for e in span_exporters]
    readers = list(metric_readers)
    interval_ms = settings.metrics_interval.total_seconds() * 1000
    if mode in ("otlp", "console", "file"):
        spans, metric_exporter = _exporters(mode, service, settings)
        # The file exporter writes each span as it ends (a killed process loses none);
        # network exporters batch. OTEL_{TRACES,METRICS}_EXPORTER=none turns one signal
        # off (Jaeger, for one, accepts OTLP traces but not metrics).
        if _wanted("OTEL_TRACES_EXPORTER"):
            processor = SimpleSpanProcessor if mode == "file" else BatchSpanProcessor
            processors.append(processor(spans))
        if _wanted("OTEL_METRICS_EXPORTER"):
            readers.append(
                PeriodicExportingMetricReader(metric_exporter, export_interval_millis=interval_ms)
            )
    tracer_provider = TracerProvider(resource=res, id_generator=SagaIds())
    for p in processors:
        tracer_provider.add_span_processor(p)
    meter_provider = MeterProvider(resource=res, metric_readers=readers)
    name = mode if mode != "off" else "memory"
    return Telemetry(
        service, name, tracer_provider, meter_provider, [tracer_provider, meter_provider]
    )


def _wanted(variable: str) -> bool:
    return os.environ.get(variable, "").strip().lower() != "none"


def _exporters(
    mode: str, service: str, settings: TelemetrySettings
) -> tuple[SpanExporter, MetricExporter]:
    if mode == "console":
        return ConsoleSpanExporter(), ConsoleMetricExporter()
    if mode == "file":
        path = Path(settings.file.format(service=service, pid=os.getpid()))
        sink = JsonLines(path)
        return JsonLinesSpanExporter(sink), JsonLinesMetricExporter(sink)
    protocol = os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
    ).strip()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter(), OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(), HttpMetricExporter()
