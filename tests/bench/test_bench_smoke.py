"""`sagas bench` end to end, tiny: every phase runs a few seconds on the session broker."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.kafka

KEYS = {
    "raw_relay_msgs_per_s",
    "hop_probe",
    "saga_msgs_per_s",
    "sagas_per_s",
    "ratio",
    "latency_ms",
    "order_saga",
    "scaling",
    "restore_s_100k",
    "rss_mb",
    "tracing_cost",
    "reference",
    "targets",
    "phase_seconds",
}
COMPONENTS = {"engine", "participants", "broker", "bench", "total", "total_without_broker"}


def positive(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value) and value > 0


@pytest.mark.timeout(300)
def test_tiny_bench_reports_every_figure(kafka_bootstrap: str, tmp_path: Path) -> None:
    out, png, doc = tmp_path / "result.json", tmp_path / "bench.png", tmp_path / "bench.md"
    doc.write_text(
        "# Benchmarks\n\n<!-- bench:results:start -->\nold\n<!-- bench:results:end -->\n"
    )
    argv = [
        sys.executable, "-m", "sagas.ops.cli", "bench", "--json",
        "--duration", "1", "--ramp", "0.5", "--step", "1", "--drain", "2", "--warmup", "5",
        "--probe-hops", "20", "--probe-warmup", "5",
        "--scaling", "2:3", "--state-scale", "0.001",
        "--out", str(out), "--plot", str(png), "--docs", str(doc),
    ]  # fmt: skip
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap}
    done = subprocess.run(argv, env=env, capture_output=True, timeout=280, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]

    result = json.loads(done.stdout)
    assert json.loads(out.read_text()) == result
    assert set(result) >= KEYS
    assert "errors" not in result, result["errors"]
    assert positive(result["raw_relay_msgs_per_s"])
    assert positive(result["sagas_per_s"])
    # A saga costs at least 22 messages on the happy path (docs/benchmarks.md): 6
    # consumed (OrderPlaced, OrderFulfilled, four replies), 16 produced (four commands,
    # OrderFulfilled, six outcome events, five changelog records); a resend after a
    # timeout on a slow machine adds more.
    per_saga = result["msgs_per_saga"]
    assert per_saga["total"] == pytest.approx(result["saga_msgs_per_s"] / result["sagas_per_s"])
    assert per_saga["consumed"] >= 6
    assert per_saga["produced"] >= 16
    assert result["ratio"] == pytest.approx(
        result["saga_msgs_per_s"] / result["raw_relay_msgs_per_s"]
    )
    _check_probe(result["hop_probe"])
    for kind in ("instant", "framework"):
        _check_order_saga(result["order_saga"][kind], result["reference"])
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert result["scaling"] == {"2": {"3": pytest.approx(result["scaling"]["2"]["3"])}}
    assert positive(result["scaling"]["2"]["3"])
    assert positive(result["tracing_cost"])
    assert positive(result["restore_s_100k"])
    assert set(result["rss_mb"]) == {"10k", "1m"}
    assert all(v > 10 for v in result["rss_mb"].values())
    assert {c["met"] for c in result["targets"].values()} <= {True, False}  # all measured
    assert all(positive(s) for s in result["phase_seconds"].values())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = doc.read_text()
    assert "old" not in text
    assert "| framework: sagas_per_s |" in text


def _check_probe(probe: dict[str, Any]) -> None:
    for kind in ("transactional", "idempotent"):
        hops = probe[kind]
        assert hops["hops"] == 20
        assert 0 < hops["p50_ms"] <= hops["p99_ms"] <= hops["max_ms"]
    # Five of the engine's (the start, decided where it lands, and four replies), four
    # of the participants'.
    assert probe["saga_hops"]["total"] == 9
    assert positive(probe["floor_ms"])


def _check_order_saga(entry: dict[str, Any], reference: dict[str, Any]) -> None:
    assert positive(entry["sagas_per_s"])
    assert entry["completed"] > 0
    cpu = entry["cpu_s_per_1000_sagas"]
    assert set(cpu) == COMPONENTS
    assert all(positive(v) for v in cpu.values()), cpu  # the broker's pid is found too
    assert cpu["total"] == pytest.approx(
        sum(cpu[c] for c in COMPONENTS - {"total", "total_without_broker"})
    )
    latency = entry["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"]
    assert latency["samples"] > 0
    assert len(entry["sweep"]) == 5
    assert entry["reference"] == reference
    assert latency["reference"] == reference
    assert positive(reference["raw_relay_msgs_per_s"])
    assert positive(reference["saga_hops_floor_ms"])
