"""The engine's metrics and spans, read in memory, against the sagas actually run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sagas.definition import Saga
from sagas.runtime.engine import Engine
from sagas.runtime.store import Store
from sagas.runtime.transport.kafka import KafkaTransport
from sagas.settings import EngineSettings, TelemetrySettings
from sagas.telemetry import EngineTelemetry, setup
from sagas.telemetry.files import span_line
from sagas.telemetry.traces import group
from services.app import app as examples
from tests.integration.engine_support import (
    Participants,
    engine_settings,
    order_placed,
    publish,
    two_step_saga,
    wait_for,
)


@asynccontextmanager
async def traced_engine(
    bootstrap: str, saga: Saga[Any], settings: EngineSettings
) -> AsyncIterator[tuple[Store, InMemorySpanExporter, InMemoryMetricReader]]:
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    telemetry = setup(
        "sagas-engine", TelemetrySettings(), span_exporters=[spans], metric_readers=[reader]
    )
    codec = examples.codec()
    store = await Store.open(settings.engine_db)
    hooks = EngineTelemetry(telemetry, settings.topic_prefix)
    engine = Engine(
        [saga],
        settings,
        transport=KafkaTransport(bootstrap, settings.topic_prefix),
        codec=codec,
        classes=examples.classes,
        store=store,
        telemetry=hooks,
    )
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(engine.run())
            yield store, spans, reader
            engine.shutdown()
    finally:
        await store.close()
        codec.close()
        telemetry.shutdown()


def metric_points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    assert data is not None
    found: dict[str, list[Any]] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                found.setdefault(metric.name, []).extend(metric.data.data_points)
    return found


def total(points: list[Any], **attributes: str) -> float:
    return float(
        sum(p.value for p in points if all(p.attributes.get(k) == v for k, v in attributes.items()))
    )


def ms_between(started: str, ended: str) -> float:
    return (datetime.fromisoformat(ended) - datetime.fromisoformat(started)).total_seconds() * 1000


async def test_metrics_count_the_sagas_run_and_spans_form_one_tree_each(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"tm{uuid.uuid4().hex[:8]}."
    saga = two_step_saga("telemetry_test")
    settings = engine_settings(tmp_path, prefix)
    codec = examples.codec()
    participants = Participants(kafka_bootstrap, prefix, codec)
    ids = ["o1", "o2", "o3-nostock", "o4-declined", "o5-declined"]
    async with traced_engine(kafka_bootstrap, saga, settings) as (store, spans, reader):
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(participants.run())
            await publish(
                kafka_bootstrap, f"{prefix}orders.events", codec, [order_placed(i) for i in ids]
            )

            async def all_ended() -> bool:
                counts = await store.counts_by_state(saga.name)
                return counts.get("COMPLETED", 0) + counts.get("COMPENSATED", 0) == len(ids)

            await wait_for(all_ended, 60, "the sagas to end")
            task.cancel()
        stored = {i: await store.get(saga.name, f"order:{i}") for i in ids}
        points = metric_points(reader)
        finished = [span_line(s) for s in spans.get_finished_spans()]
    codec.close()

    name = {"saga.name": saga.name}
    assert total(points["sagas.started"], **name) == 5
    assert total(points["sagas.completed"], **name) == 2
    assert total(points["sagas.compensated"], **name) == 3
    assert "sagas.failed" not in points or total(points["sagas.failed"], **name) == 0
    assert total(points["sagas.step.failures"], **name, **{"saga.step": "reserve_stock"}) == 1
    assert total(points["sagas.step.failures"], **name, **{"saga.step": "authorize_payment"}) == 2
    assert total(points["sagas.in_flight"], **name) == 0
    assert total(points["process.memory.usage"]) > 0

    # The cycle time histogram holds exactly the stored start-to-end times.
    cycle: list[HistogramDataPoint] = points["sagas.cycle_time"]
    assert sum(p.count for p in cycle) == 5
    expected_ms = [
        ms_between(str(b["created"]), str(b["ended"])) for b in stored.values() if b is not None
    ]
    assert len(expected_ms) == 5
    assert abs(sum(p.sum for p in cycle) - sum(expected_ms)) < 1.0
    assert min(p.min for p in cycle) >= min(expected_ms) - 0.01
    assert max(p.max for p in cycle) <= max(expected_ms) + 0.01
    by_outcome = {(p.attributes or {}).get("saga.outcome"): p.count for p in cycle}
    assert by_outcome == {"COMPLETED": 2, "COMPENSATED": 3}

    # Each saga: one trace, one root (the saga span: the test's events carry no
    # trace context), no orphans, the saga span spanning the stored times.
    traces = group(finished)
    assert len(traces) == 5
    for trace in traces.values():
        assert trace.orphans == []
        (root,) = trace.roots
        assert root["name"] == f"saga {saga.name}"
        body = stored[str(root["attributes"]["saga.id"]).removeprefix("order:")]
        assert body is not None
        started_ns = datetime.fromisoformat(str(body["created"])).timestamp() * 1e9
        assert abs(root["start_ns"] - started_ns) < 1_000
        assert trace.find(f"start {saga.name}")
        sends = trace.find("send inventory.ReserveStock")
        assert sends
        assert sends[0]["kind"] == "PRODUCER"
    declined = next(
        t
        for t in traces.values()
        if t.find("saga ")[0]["attributes"]["saga.id"] == "order:o4-declined"
    )
    errors = [s for s in declined.spans if s["status"] == "ERROR"]
    assert {s["attributes"].get("saga.step") for s in errors} >= {"authorize_payment"}
    assert declined.find("send inventory.ReleaseStock")[0]["attributes"]["saga.compensation"]
