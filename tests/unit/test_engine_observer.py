"""Telemetry is an observer of the engine: off by default, and it never changes what is stored.

The same inputs are decided by two unit workers on their own SQLite stores, one with
the default `NoObserver` and one with a real `EngineTelemetry` exporting to memory,
driven as a unit drives them (``decide``, ``tick``, ``committed``). Every record they
produce is the same byte for byte, but for the trace headers of the messages sent, and
so is what their stores hold.
"""

from __future__ import annotations

import itertools
import sqlite3
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope
from sagas.runtime import topics
from sagas.runtime.observer import EngineObserver, NoObserver
from sagas.runtime.partitioning import Partitioning
from sagas.runtime.store import Store
from sagas.runtime.transport.memory import MemoryTransport
from sagas.runtime.transport.records import Consumed, Delivered, OutRecord
from sagas.runtime.units import Decided
from sagas.runtime.worker import SagaWorker
from sagas.settings import TelemetrySettings
from sagas.telemetry import EngineTelemetry, setup
from services.app import app as examples
from tests.integration.engine_support import order_placed, reply_for, two_step_saga

SAGA = two_step_saga("observed")
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
K = 0  # one partition: every saga lives in unit 0
TRACE_HEADERS = ("traceparent", "tracestate")
UPSTREAM = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
"""The trace context of the start events and replies (a participant's span)."""


@dataclass
class WallClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    """A worker on unit 0 and its store, driven like a unit drives it."""

    worker: SagaWorker
    store: Store
    offsets: itertools.count[int] = field(default_factory=itertools.count)

    async def commit(self, decided: Decided) -> None:
        delivered = [Delivered(o.topic, K, next(self.offsets)) for o in decided.outgoing]
        await self.worker.committed(K, decided, delivered)


async def rig(path: Path, codec: Codec, clock: WallClock, observer: EngineObserver | None) -> Rig:
    definitions = {SAGA.name: {1: SAGA}}
    transport = MemoryTransport()
    await transport.ensure_topics(topics.saga_topics(SAGA.name, 1), 1)
    store = await Store.open(path)
    worker = SagaWorker(
        definitions,
        codec,
        examples.classes,
        store,
        clock,
        partitioning=Partitioning(definitions, 1),
        reader=transport.partition_reader(),
        physical=str,
        hold_for=timedelta(seconds=60),
        telemetry=observer,
    )
    await worker.take(K)
    return Rig(worker, store)


def record(codec: Codec, topic: str, offset: int, key: bytes, envelope: Envelope) -> Consumed:
    headers, value = codec.encode(envelope)
    return Consumed(topic, K, offset, key, value, tuple(headers))


def starts(codec: Codec, offsets: Iterator[int]) -> list[Consumed]:
    """Four orders (one is never answered: it times out) and a record no one can read."""
    found = [
        record(
            codec,
            "orders.events",
            next(offsets),
            order_id.encode(),
            Envelope(
                id=f"placed-{order_id}",
                type=order_placed(order_id).SCHEMA,
                source="/tests",
                time=T0,
                payload=order_placed(order_id),
                traceparent=UPSTREAM if order_id != "o1" else None,
            ),
        )
        for order_id in ("o1", "o2-declined", "o3-nostock", "o4-silent")
    ]
    found.append(Consumed("orders.events", K, next(offsets), b"x", b"not avro", ()))
    return found


def replies(codec: Codec, offsets: Iterator[int], sent: Sequence[OutRecord]) -> list[Consumed]:
    """The participants' answers to the commands ``sent`` (none for the silent order)."""
    found = []
    for out in sent:
        if not out.topic.endswith(".commands"):
            continue
        command = codec.decode(out.headers, out.value)
        if command.payload.order_id.endswith("silent"):
            continue
        answer = reply_for(command.payload)
        envelope = Envelope(
            id=f"{command.id}:reply",
            type=answer.SCHEMA,
            source="/tests",
            time=T0,
            payload=answer,
            saga_id=command.saga_id,
            in_reply_to=command.id,
            traceparent=UPSTREAM,
        )
        found.append(
            record(codec, topics.inbox(SAGA.name), next(offsets), out.key or b"", envelope)
        )
    return found


def untraced(records: Sequence[OutRecord]) -> list[OutRecord]:
    return [
        r._replace(headers=tuple(h for h in r.headers if h[0] not in TRACE_HEADERS))
        for r in records
    ]


def traceparents(records: Sequence[OutRecord]) -> list[bytes | None]:
    return [dict(r.headers).get("traceparent") for r in records]


def rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return list(db.iterdump())


def check(off: Decided, on: Decided) -> None:
    """``on`` (telemetry on) is ``off`` but for the trace headers of what is sent."""
    assert untraced(on.outgoing) == untraced(off.outgoing)
    assert on.outputs == off.outputs
    state = on.outgoing[on.outputs :]  # changelog and history records: byte for byte
    assert state == off.outgoing[off.outputs :]
    assert all(name not in TRACE_HEADERS for r in state for name, _ in r.headers)


async def test_telemetry_changes_nothing_but_the_trace_headers_of_what_is_sent(
    tmp_path: Path,
) -> None:
    codec = examples.codec()
    clock = WallClock()
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    settings = TelemetrySettings(SAGAS_TELEMETRY="off")  # on anyway: in-memory sinks are given
    telemetry = setup("sagas-engine", settings, span_exporters=[spans], metric_readers=[reader])
    plain = await rig(tmp_path / "plain.db", codec, clock, None)
    traced = await rig(tmp_path / "traced.db", codec, clock, EngineTelemetry(telemetry))
    inputs = itertools.count()

    async def decide(batch: Sequence[Consumed]) -> Decided:
        off = await plain.worker.decide(K, batch)
        on = await traced.worker.decide(K, batch)
        check(off, on)
        await plain.commit(off)
        await traced.commit(on)
        return off

    async def tick() -> Decided | None:
        off = await plain.worker.tick(K)
        on = await traced.worker.tick(K)
        if off is None or on is None:
            assert off is on
            return None
        check(off, on)
        await plain.commit(off)
        await traced.commit(on)
        return off

    batches = 0
    try:
        batch = starts(codec, inputs)
        while batch:
            batches += 1
            off = await decide(batch)
            batch = replies(codec, inputs, off.outgoing[: off.outputs])
        clock.now = T0 + timedelta(seconds=21)  # the silent order's reservation times out
        while (fired := await tick()) is not None:
            batches += 1
            batch = replies(codec, inputs, fired.outgoing[: fired.outputs])
            while batch:
                off = await decide(batch)
                batch = replies(codec, inputs, off.outgoing[: off.outputs])
        data = reader.get_metrics_data()
        assert data is not None
        started = sum(
            p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "sagas.started"
            for p in m.data.data_points
        )
    finally:
        await plain.store.close()
        await traced.store.close()
        codec.close()
        telemetry.shutdown()

    assert batches >= 4
    stored = rows(tmp_path / "plain.db")
    assert any("order:o4-silent" in line for line in stored)
    assert rows(tmp_path / "traced.db") == stored
    finished = {s.name for s in spans.get_finished_spans()}
    assert f"saga {SAGA.name}" in finished
    assert "send inventory.ReserveStock" in finished
    assert "timer TIMEOUT" in finished
    assert started == 4  # each counted once its batch committed


async def test_sent_commands_carry_the_send_span_only_with_telemetry_on(tmp_path: Path) -> None:
    codec = examples.codec()
    telemetry = setup(
        "sagas-engine",
        TelemetrySettings(SAGAS_TELEMETRY="off"),
        span_exporters=[InMemorySpanExporter()],
    )
    plain = await rig(tmp_path / "plain.db", codec, WallClock(), NoObserver())
    traced = await rig(tmp_path / "traced.db", codec, WallClock(), EngineTelemetry(telemetry))
    try:
        batch = starts(codec, itertools.count())
        off = await plain.worker.decide(K, batch)
        on = await traced.worker.decide(K, batch)
    finally:
        await plain.store.close()
        await traced.store.close()
        codec.close()
        telemetry.shutdown()
    sent_off = [r for r in off.outgoing if r.topic == "inventory.commands"]
    sent_on = [r for r in on.outgoing if r.topic == "inventory.commands"]
    assert len(sent_off) == len(sent_on) == 4
    # Off: the saga's own context (the start event's, or none); on: each send span's.
    assert sorted(traceparents(sent_off), key=str) == sorted(
        [None, *[UPSTREAM.encode()] * 3], key=str
    )
    assert all(t is not None and t != UPSTREAM.encode() for t in traceparents(sent_on))


def test_the_observer_protocols_need_no_opentelemetry() -> None:
    probe = (
        "import sys, sagas.runtime.observer; "
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], check=True, capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def counted(reader: InMemoryMetricReader, name: str) -> int:
    data = reader.get_metrics_data()
    if data is None:
        return 0
    return sum(
        int(p.value)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    )


async def test_two_batches_in_flight_are_each_counted_once_they_commit(tmp_path: Path) -> None:
    """`SAGAS_MAX_IN_FLIGHT=2`: batch N+1 is decided before N commits; each keeps its own
    counts, and a batch that never commits counts nothing."""
    codec = examples.codec()
    reader = InMemoryMetricReader()
    telemetry = setup(
        "sagas-engine",
        TelemetrySettings(SAGAS_TELEMETRY="off"),
        span_exporters=[InMemorySpanExporter()],
        metric_readers=[reader],
    )
    traced = await rig(tmp_path / "traced.db", codec, WallClock(), EngineTelemetry(telemetry))
    try:
        placed = starts(codec, itertools.count())[:4]
        first = await traced.worker.decide(K, placed[:2])
        second = await traced.worker.decide(K, placed[2:])
        assert counted(reader, "sagas.started") == 0  # nothing committed yet
        await traced.commit(first)
        assert counted(reader, "sagas.started") == 2
        await traced.commit(second)
        assert counted(reader, "sagas.started") == 4
        unseen = Envelope(
            id="placed-o9", type=order_placed("o9").SCHEMA, source="/tests", time=T0,
            payload=order_placed("o9"),
        )  # fmt: skip
        never = await traced.worker.decide(K, [record(codec, "orders.events", 9, b"o9", unseen)])
        assert any(r.topic == "inventory.commands" for r in never.outgoing)  # o9 started
        assert counted(reader, "sagas.started") == 4  # but its batch never committed
    finally:
        await traced.store.close()
        codec.close()
        telemetry.shutdown()


def test_dead_letters_are_counted_under_the_physical_topic_name() -> None:
    reader = InMemoryMetricReader()
    telemetry = setup(
        "sagas-engine", TelemetrySettings(SAGAS_TELEMETRY="off"), metric_readers=[reader]
    )
    try:
        observer = EngineTelemetry(telemetry, topic_prefix="team-a.")
        observer.dead_lettered(topics.dead_letters(SAGA.name), "engine", 2)  # a batch's own
        observer.dead_lettered(topics.ROUTER_DEAD_LETTERS, "router")
        data = reader.get_metrics_data()
        assert data is not None
        by_topic = {
            p.attributes["messaging.destination.name"]: p.value
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "sagas.dead_letters"
            for p in m.data.data_points
        }
    finally:
        telemetry.shutdown()
    assert by_topic == {f"team-a.sagas.{SAGA.name}.dlq": 2, "team-a.sagas.router.dlq": 1}
