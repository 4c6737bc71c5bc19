"""The bench's targets: met or missed, and by how much; the tables that show them."""

from __future__ import annotations

from typing import Any

import pytest

from sagas.bench import report
from sagas.bench.targets import check, describe, targets


def _result() -> dict[str, Any]:
    framework = {
        "sagas_per_s": 250.0,
        "latency_ms": {"p50": 30.0, "p95": 90.0, "p99": 150.0},
        "cpu_s_per_1000_sagas": {"engine": 4.0, "participants": 3.0, "broker": 2.5,
                                 "bench": 0.5, "total": 10.0, "total_without_broker": 7.5},
    }  # fmt: skip
    return {
        "hop_probe": {
            "transactional": {"p50_ms": 4.0, "p99_ms": 30.0},
            "idempotent": {"p50_ms": 1.0, "p99_ms": 7.0},
            "saga_hops": {"transactional": 6, "idempotent": 4, "total": 10},
            "floor_ms": 28.0,
        },
        "order_saga": {"framework": framework},
        "restore_s_100k": 12.0,
        "rss_mb": {"10k": 90.0, "1m": 95.0},
        "tracing_cost": 0.9,
        "phase_seconds": {"probe": 5.0, "relay": 20.0},
        "phase_load_avg": {"probe": 1.5, "relay": 1.25},
    }


def test_every_issue_16_target_is_checked_with_its_margin() -> None:
    t = targets(_result())
    assert t["framework_sagas_per_s"]["met"] is False
    assert t["framework_sagas_per_s"]["margin"] == pytest.approx(-50.0)
    assert t["framework_latency_p50_ms"]["met"] is True
    assert t["framework_latency_p99_ms"]["met"] is False
    assert t["framework_latency_p50_vs_floor"]["bound"] == pytest.approx(56.0)  # 2 x floor
    assert t["framework_latency_p50_vs_floor"]["met"] is True
    assert t["framework_cpu_s_per_1000_sagas"]["met"] is True  # the bound itself is met
    assert t["restore_s_100k"]["met"] is False
    assert t["rss_1m_over_10k"]["met"] is True
    assert t["tracing_cost"]["met"] is True


def test_a_figure_not_measured_is_neither_met_nor_missed() -> None:
    t = targets({})
    assert {c["met"] for c in t.values()} == {None}
    assert t["framework_latency_p50_vs_floor"]["bound"] is None
    assert describe(t["framework_latency_p50_ms"]) == "<= 40 ms: not measured"


def test_the_text_says_by_how_much() -> None:
    assert describe(check(150.0, 120.0, False, "ms")) == "<= 120 ms: MISSED by 30 ms (x1.25)"
    assert describe(check(330.0, 300.0, True, "sagas/s")) == (
        ">= 300 sagas/s: met, 30 sagas/s to spare (x1.10)"
    )
    assert describe(check(0.9, 0.85, True, "x")) == ">= 0.85: met, 0.05 to spare (x1.06)"


def test_the_markdown_holds_every_table() -> None:
    text = report.markdown(_result())
    assert "| framework: sagas_per_s | 250.0 | >= 300 sagas/s: MISSED by 50 sagas/s" in text
    assert "| floor of the saga's hops ms | 28.0 |  |" in text
    assert "| total | not measured | 10.00 |" in text  # CPU: instant, framework
    assert "| relay | 20 | 1.2 |\n| probe | 5 | 1.5 |" in text  # in the order they ran
