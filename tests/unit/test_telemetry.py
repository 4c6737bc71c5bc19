"""sagas.telemetry without a broker: modes, propagation, the saga span, files, logs."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sagas.settings import TelemetrySettings
from sagas.telemetry import configure_logging, extract, inject, saga_scope, setup
from sagas.telemetry.files import read_lines
from sagas.telemetry.propagation import new_trace, parse, saga_context, saga_span_id
from sagas.telemetry.setup import fixed_ids, mode_of
from sagas.telemetry.traces import group, load_spans, render_text

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SDK_DISABLED", "SAGAS_TELEMETRY"):
        monkeypatch.delenv(name, raising=False)
    telemetry = setup("x", TelemetrySettings())
    assert not telemetry.enabled
    assert isinstance(telemetry.tracer_provider, trace.NoOpTracerProvider)
    telemetry.shutdown()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    assert mode_of(TelemetrySettings()) == "otlp"
    monkeypatch.setenv("SAGAS_TELEMETRY", "console")
    assert mode_of(TelemetrySettings()) == "console"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert mode_of(TelemetrySettings()) == "off"


def test_headers_round_trip() -> None:
    headers: list[tuple[str, bytes]] = [("ce_id", b"1")]
    context = extract([("traceparent", TRACEPARENT.encode())])
    inject(headers, context)
    assert ("traceparent", TRACEPARENT.encode()) in headers
    span = trace.get_current_span(extract(headers)).get_span_context()
    assert f"{span.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert parse("garbage") is None
    assert parse(None) is None


def test_the_saga_span_id_is_fixed_by_trace_and_saga() -> None:
    start = parse(TRACEPARENT)
    assert start is not None
    one = saga_context(TRACEPARENT, None, "order:1")
    assert one is not None
    assert one.trace_id == start.trace_id
    assert one.span_id == saga_span_id(start.trace_id, "order:1")
    assert one.span_id != saga_span_id(start.trace_id, "order:2")
    root = new_trace(start.trace_id, "order:1")
    assert saga_context(root, None, "order:1") == parse(root)


def test_fixed_ids_give_the_span_its_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGAS_TELEMETRY", raising=False)
    exporter = InMemorySpanExporter()
    telemetry = setup("x", TelemetrySettings(), span_exporters=[exporter])
    with fixed_ids(0x1234, 0x99):
        telemetry.tracer().start_span("saga", start_time=1_000).end(end_time=5_000)
    telemetry.tracer().start_span("other").end()
    first, second = exporter.get_finished_spans()
    context = first.get_span_context()
    assert context is not None
    assert (context.trace_id, context.span_id) == (0x1234, 0x99)
    assert (first.start_time, first.end_time) == (1_000, 5_000)
    other = second.get_span_context()
    assert other is not None
    assert other.span_id != 0x99
    telemetry.shutdown()


def test_file_mode_writes_one_json_line_per_span_and_metrics(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGAS_TELEMETRY", "file")
    monkeypatch.setenv("SAGAS_TELEMETRY_FILE", str(tmp_path / "{service}.jsonl"))
    telemetry = setup("svc", TelemetrySettings())
    tracer = telemetry.tracer()
    parent = tracer.start_span("parent")
    tracer.start_span("child", context=trace.set_span_in_context(parent)).end()
    parent.end()
    telemetry.meter().create_counter("things").add(2)
    telemetry.shutdown()
    telemetry.shutdown()  # idempotent
    lines = read_lines([tmp_path / "svc.jsonl"])
    assert [line["signal"] for line in lines] == ["span", "span", "metrics"]
    (only,) = group(load_spans([tmp_path / "svc.jsonl"])).values()
    assert only.orphans == []
    assert [r["name"] for r in only.roots] == ["parent"]
    assert "  child  [svc]" in render_text(only)


def test_json_logs_carry_trace_span_and_saga_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SAGAS_TELEMETRY", raising=False)
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        configure_logging("svc", TelemetrySettings(log_format="auto"), stream)
        exporter = InMemorySpanExporter()
        telemetry = setup("svc", TelemetrySettings(), span_exporters=[exporter])
        span = telemetry.tracer().start_span("work")
        with trace.use_span(span, end_on_exit=True), saga_scope("order:7"):
            logging.getLogger("t").info("hello %s", "there")
        logging.getLogger("t").info("outside")
        telemetry.shutdown()
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    inside, outside = (json.loads(line) for line in stream.getvalue().splitlines())
    context = span.get_span_context()
    assert inside["message"] == "hello there"
    assert inside["trace_id"] == f"{context.trace_id:032x}"
    assert inside["span_id"] == f"{context.span_id:016x}"
    assert inside["saga_id"] == "order:7"
    assert inside["service"] == "svc"
    assert "trace_id" not in outside
    assert "saga_id" not in outside
