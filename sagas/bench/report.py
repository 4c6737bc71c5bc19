"""The bench result as tables (terminal and Markdown), against the targets (`targets`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from sagas.bench.cpu import COMPONENTS
from sagas.bench.targets import describe, targets

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"
KINDS = ("instant", "framework")
CPU_ROWS = (*COMPONENTS, "total", "total_without_broker")
PHASES = (
    "relay",
    "probe",
    "saga_instant",
    "sweep_instant",
    "saga_framework",
    "sweep_framework",
    "tracing",
    "scaling",
    "restore",
    "rss_10k",
    "rss_1m",
)
"""The phases in the order they run (the JSON's keys are sorted)."""


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _pair(a: Any, b: Any, digits: int = 1) -> str:
    return f"{_fmt(a, digits)} / {_fmt(b, digits)}"


def rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, target) rows of the summary table."""
    t = {name: describe(c) for name, c in targets(r).items()}
    probe = r.get("hop_probe") or {}
    hops = probe.get("saga_hops") or {}
    txn, idem = probe.get("transactional") or {}, probe.get("idempotent") or {}
    saga = r.get("order_saga") or {}
    fw = saga.get("framework") or {}
    fw_lat = fw.get("latency_ms") or {}
    lat = r.get("latency_ms") or {}
    rss = r.get("rss_mb") or {}
    restore = "restore_s_100k"
    counts = (r.get("params") or {}).get("state_counts") or {}
    if counts.get("restore", 100_000) != 100_000:
        restore += f" (scaled: {counts['restore']} sagas)"
    out = [
        ("raw_relay_msgs_per_s", _fmt(r.get("raw_relay_msgs_per_s")), ""),
        ("hop p50 / p99 ms, transactional", _pair(txn.get("p50_ms"), txn.get("p99_ms")), ""),
        ("hop p50 / p99 ms, idempotent", _pair(idem.get("p50_ms"), idem.get("p99_ms")), ""),
        (
            "saga hops (transactional + idempotent)",
            f"{_fmt(hops.get('total'))} ({_fmt(hops.get('transactional'))} + "
            f"{_fmt(hops.get('idempotent'))})",
            "",
        ),
        ("floor of the saga's hops ms", _fmt(probe.get("floor_ms")), ""),
        ("instant: sagas_per_s", _fmt(r.get("sagas_per_s")), ""),
        ("instant: messages per saga", _fmt((r.get("msgs_per_saga") or {}).get("total")), ""),
        ("instant: saga_msgs_per_s", _fmt(r.get("saga_msgs_per_s")), ""),
        ("instant: ratio (to the relay)", _fmt(r.get("ratio"), 3), ""),
        ("instant: latency p50 / p99 ms (half load)", _pair(lat.get("p50"), lat.get("p99")), ""),
        ("framework: sagas_per_s", _fmt(fw.get("sagas_per_s")), t["framework_sagas_per_s"]),
        (
            "framework: latency p50 ms (half load)",
            _fmt(fw_lat.get("p50")),
            t["framework_latency_p50_ms"],
        ),
        (
            "framework: latency p50 ms vs 2 x floor",
            _fmt(fw_lat.get("p50")),
            t["framework_latency_p50_vs_floor"],
        ),
        ("framework: latency p95 ms (half load)", _fmt(fw_lat.get("p95")), ""),
        (
            "framework: latency p99 ms (half load)",
            _fmt(fw_lat.get("p99")),
            t["framework_latency_p99_ms"],
        ),
        (
            "framework: CPU s per 1,000 sagas, total",
            _fmt((fw.get("cpu_s_per_1000_sagas") or {}).get("total"), 2),
            t["framework_cpu_s_per_1000_sagas"],
        ),
        (restore, _fmt(r.get("restore_s_100k"), 2), t["restore_s_100k"]),
        ("rss_mb 10k", _fmt(rss.get("10k")), ""),
        ("rss_mb 1m (target: 1m / 10k)", _fmt(rss.get("1m")), t["rss_1m_over_10k"]),
        ("tracing_cost", _fmt(r.get("tracing_cost"), 3), t["tracing_cost"]),
    ]
    for engines, by_partitions in sorted((r.get("scaling") or {}).items()):
        for partitions, rate in sorted(by_partitions.items(), key=lambda kv: int(kv[0])):
            out.append(
                (f"sagas_per_s {engines} engine(s), {partitions} partition(s)", _fmt(rate), "")
            )
    return out


def cpu_rows(r: dict[str, Any]) -> list[tuple[str, ...]]:
    """CPU seconds per 1,000 sagas at saturation: a row per component, a column per kind."""
    saga = r.get("order_saga") or {}
    cpu = [(saga.get(k) or {}).get("cpu_s_per_1000_sagas") or {} for k in KINDS]
    return [(name, *(_fmt(c.get(name), 2) for c in cpu)) for name in CPU_ROWS]


def sweep_rows(r: dict[str, Any], kind: str) -> list[tuple[str, ...]]:
    steps = ((r.get("order_saga") or {}).get(kind) or {}).get("sweep") or []
    return [
        (
            f"{s['offered']:.1f}",
            f"{s['achieved']:.1f}",
            f"{s['p50_ms']:.0f}",
            f"{s['p95_ms']:.0f}",
            f"{s['p99_ms']:.0f}",
            str(s["unfinished"]),
        )
        for s in steps
    ]


SWEEP_COLUMNS = ("offered sagas/s", "achieved sagas/s", "p50 ms", "p95 ms", "p99 ms", "unfinished")


def print_table(r: dict[str, Any], stream: TextIO) -> None:
    console = Console(file=stream, width=120)
    for title, columns, body in _tables(r):
        table = Table(title=title)
        for column in columns:
            table.add_column(column)
        for row in body:
            table.add_row(*row)
        console.print(table)


def _tables(r: dict[str, Any]) -> list[tuple[str, tuple[str, ...], list[tuple[str, ...]]]]:
    seconds, load = r.get("phase_seconds") or {}, r.get("phase_load_avg") or {}
    order = {name: i for i, name in enumerate(PHASES)}
    phases: list[tuple[str, ...]] = [
        (k, f"{seconds[k]:.0f}", _fmt(load.get(k)))
        for k in sorted(seconds, key=lambda k: order.get(k, len(order)))
    ]
    return [
        ("sagas bench", ("figure", "value", "target"), [*rows(r)]),
        ("CPU s per 1,000 sagas at saturation", ("component", *KINDS), cpu_rows(r)),
        ("sweep, instant participants", SWEEP_COLUMNS, sweep_rows(r, "instant")),
        ("sweep, framework participants", SWEEP_COLUMNS, sweep_rows(r, "framework")),
        ("phase durations", ("phase", "seconds", "load average as it began"), phases),
    ]


def markdown(r: dict[str, Any]) -> str:
    """The tables and the machine, as Markdown."""
    lines: list[str] = []
    for title, columns, body in _tables(r):
        if title != "sagas bench":
            lines += ["", f"{title[0].upper()}{title[1:]}:", ""]
        lines += ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
    m = r.get("machine") or {}
    lines += [
        "",
        f"Machine: {m.get('cpus')} CPUs ({m.get('cpu_model')}), {m.get('memory_gib')} GiB, "
        f"Python {m.get('python')}; load average at start {m.get('load_avg_at_start', 0):.1f}. "
        f"Run took {r.get('total_seconds', 0):.0f} s.",
    ]
    return "\n".join(lines)


def update_docs(path: Path, r: dict[str, Any]) -> None:
    """Replace the text between the result markers of ``path`` with `markdown` (r)
    (a file without them, or no file, gets them at its end)."""
    text = path.read_text() if path.exists() else ""
    block = f"{START}\n{markdown(r)}\n{END}"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
