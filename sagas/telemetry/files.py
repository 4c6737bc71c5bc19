"""JSON-lines exporters for development and tests: one object a line, one file a process.

Span lines: ``{"signal": "span", "service", "instance", "name", "kind", "trace_id", "span_id",
"parent_id", "start_ns", "end_ns", "status", "status_message", "attributes",
"events", "links"}`` (ids as lowercase hex, as in ``traceparent``). Metric lines:
``{"signal": "metrics", "service", "data"}`` with ``data`` in the SDK's JSON form.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult


class JsonLines:
    """An append-only file shared by the span and the metric exporter (thread-safe)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._users = 0
        self._file = path.open("a", encoding="utf-8")

    def write(self, objects: Sequence[dict[str, Any]]) -> None:
        text = "".join(json.dumps(o, separators=(",", ":"), default=str) + "\n" for o in objects)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(text)
            # Into the OS at once: a process killed right after still leaves the line.
            self._file.flush()

    def acquire(self) -> JsonLines:
        """Count one more exporter writing here; the file closes when the last releases."""
        with self._lock:
            self._users += 1
        return self

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users <= 0:
                self._file.close()


def span_line(span: ReadableSpan) -> dict[str, Any]:
    context = span.get_span_context()
    assert context is not None
    parent = span.parent
    return {
        "signal": "span",
        "service": span.resource.attributes.get("service.name"),
        "instance": span.resource.attributes.get("service.instance.id"),
        "name": span.name,
        "kind": span.kind.name,
        "trace_id": f"{context.trace_id:032x}",
        "span_id": f"{context.span_id:016x}",
        "parent_id": f"{parent.span_id:016x}" if parent is not None else None,
        "start_ns": span.start_time,
        "end_ns": span.end_time,
        "status": span.status.status_code.name,
        "status_message": span.status.description,
        "attributes": dict(span.attributes or {}),
        "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
        "links": [
            {"trace_id": f"{link.context.trace_id:032x}", "span_id": f"{link.context.span_id:016x}"}
            for link in span.links
        ],
    }


class JsonLinesSpanExporter(SpanExporter):
    def __init__(self, sink: JsonLines) -> None:
        self._sink = sink.acquire()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self._sink.write([span_line(s) for s in spans])
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._sink.release()


class JsonLinesMetricExporter(MetricExporter):
    """Cumulative metrics, as the SDK's JSON."""

    def __init__(self, sink: JsonLines) -> None:
        super().__init__()
        self._sink = sink.acquire()

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        service = None
        for rm in metrics_data.resource_metrics:
            service = rm.resource.attributes.get("service.name")
        data = json.loads(metrics_data.to_json(indent=None))
        self._sink.write([{"signal": "metrics", "service": service, "data": data}])
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._sink.release()


def read_lines(paths: Sequence[Path]) -> list[dict[str, Any]]:
    """Every line of the given files (a torn last line of a killed process is skipped)."""
    found: list[dict[str, Any]] = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return found
