"""The targets a bench result is held to (issue 16, and the earlier ones it keeps).

- the order saga with the participants on the framework, 1 engine, 6 partitions:
  at least 300 sagas/s at saturation; at half that rate, cycle time p50 <= 40 ms,
  p99 <= 120 ms, and p50 no worse than twice the floor of the saga's hops (the hop
  probe's medians, `sagas.bench.probe.SagaHops.floor_ms`);
- CPU over that saturation window, every component with the broker: <= 10 s per
  1,000 sagas;
- restore of 100k sagas <= 10 s; memory with 1m sagas stored <= 1.2 x with 10k;
  tracing keeps >= 0.85 of the throughput.

Each target records the figure, the bound, whether it is met (None: not measured),
and by how much: ``margin`` (figure - bound, in the figure's unit) and ``factor``
(figure / bound).
"""

from __future__ import annotations

from typing import Any

LATENCY_P50_MS = 40.0
LATENCY_P99_MS = 120.0
FLOOR_FACTOR = 2.0
SAGAS_PER_S = 300.0
CPU_S_PER_1000 = 10.0
RESTORE_S = 10.0
RSS_GROWTH = 1.2
TRACING_COST = 0.85


def check(value: float | None, bound: float | None, at_least: bool, unit: str) -> dict[str, Any]:
    """One target: met, and the margin and factor to the bound."""
    found: dict[str, Any] = {"value": value, "bound": bound, "at_least": at_least, "unit": unit}
    if value is None or bound is None:
        return {**found, "met": None, "margin": None, "factor": None}
    return {
        **found,
        "met": value >= bound if at_least else value <= bound,
        "margin": value - bound,
        "factor": value / bound if bound else None,
    }


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Every target of result ``r`` (see the module docstring)."""
    framework = (r.get("order_saga") or {}).get("framework") or {}
    latency = framework.get("latency_ms") or {}
    cpu = framework.get("cpu_s_per_1000_sagas") or {}
    floor = (r.get("hop_probe") or {}).get("floor_ms")
    rss = r.get("rss_mb") or {}
    rss_ratio = rss["1m"] / rss["10k"] if rss.get("10k") and rss.get("1m") else None
    return {
        "framework_sagas_per_s": check(framework.get("sagas_per_s"), SAGAS_PER_S, True, "sagas/s"),
        "framework_latency_p50_ms": check(latency.get("p50"), LATENCY_P50_MS, False, "ms"),
        "framework_latency_p99_ms": check(latency.get("p99"), LATENCY_P99_MS, False, "ms"),
        "framework_latency_p50_vs_floor": check(
            latency.get("p50"), None if floor is None else FLOOR_FACTOR * floor, False, "ms"
        ),
        "framework_cpu_s_per_1000_sagas": check(cpu.get("total"), CPU_S_PER_1000, False, "s"),
        "restore_s_100k": check(r.get("restore_s_100k"), RESTORE_S, False, "s"),
        "rss_1m_over_10k": check(rss_ratio, RSS_GROWTH, False, "x"),
        "tracing_cost": check(r.get("tracing_cost"), TRACING_COST, True, "x"),
    }


def describe(c: dict[str, Any]) -> str:
    """``<= 40 ms: MISSED by 12.5 ms (x1.31)`` or ``>= 300 sagas/s: met, 20.0 to spare``."""
    sign = ">=" if c["at_least"] else "<="
    unit = "" if c["unit"] == "x" else f" {c['unit']}"
    if c["bound"] is None:
        return f"{sign} (bound not measured): -"
    head = f"{sign} {c['bound']:,.4g}{unit}"
    if c["met"] is None:
        return f"{head}: not measured"
    gap = abs(c["margin"])
    factor = "" if c["factor"] is None else f" (x{c['factor']:.2f})"
    if c["met"]:
        return f"{head}: met, {gap:,.4g}{unit} to spare{factor}"
    return f"{head}: MISSED by {gap:,.4g}{unit}{factor}"
