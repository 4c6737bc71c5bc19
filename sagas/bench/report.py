"""The bench result as a table (terminal and Markdown) and against the issue's targets."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

START = "<!-- bench:results:start -->"
END = "<!-- bench:results:end -->"


def targets(r: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each target: the figure, the bound, and whether it is met (None: not measured)."""

    def check(value: float | None, bound: float, at_least: bool) -> dict[str, Any]:
        met = None if value is None else (value >= bound if at_least else value <= bound)
        return {"value": value, "bound": bound, "at_least": at_least, "met": met}

    rss = r.get("rss_mb") or {}
    rss_ratio = rss["1m"] / rss["10k"] if rss.get("10k") and rss.get("1m") else None
    lat = r.get("latency_ms") or {}
    return {
        "ratio": check(r.get("ratio"), 0.5, True),
        "latency_p99_ms": check(lat.get("p99"), 250, False),
        "latency_p50_ms": check(lat.get("p50"), 60, False),
        "restore_s_100k": check(r.get("restore_s_100k"), 10, False),
        "rss_1m_over_10k": check(rss_ratio, 1.2, False),
        "tracing_cost": check(r.get("tracing_cost"), 0.85, True),
    }


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "not measured"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def rows(r: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(figure, value, target) rows of the summary table."""
    t = targets(r)

    def target(name: str) -> str:
        c = t[name]
        sign = ">=" if c["at_least"] else "<="
        state = {True: "met", False: "MISSED", None: "-"}[c["met"]]
        return f"{sign} {c['bound']:g}: {state}"

    lat = r.get("latency_ms") or {}
    rss = r.get("rss_mb") or {}
    counts = (r.get("params") or {}).get("state_counts") or {}
    restore = "restore_s_100k"
    if counts.get("restore", 100_000) != 100_000:
        restore += f" (scaled: {counts['restore']} sagas)"
    out = [
        ("raw_relay_msgs_per_s", _fmt(r.get("raw_relay_msgs_per_s")), ""),
        ("saga_msgs_per_s", _fmt(r.get("saga_msgs_per_s")), ""),
        ("sagas_per_s", _fmt(r.get("sagas_per_s")), ""),
        ("messages per saga", _fmt((r.get("msgs_per_saga") or {}).get("total")), ""),
        ("ratio", _fmt(r.get("ratio"), 3), target("ratio")),
        ("latency p50 ms (half load)", _fmt(lat.get("p50")), target("latency_p50_ms")),
        ("latency p95 ms (half load)", _fmt(lat.get("p95")), ""),
        ("latency p99 ms (half load)", _fmt(lat.get("p99")), target("latency_p99_ms")),
        (restore, _fmt(r.get("restore_s_100k"), 2), target("restore_s_100k")),
        ("rss_mb 10k", _fmt(rss.get("10k")), ""),
        ("rss_mb 1m", _fmt(rss.get("1m")), target("rss_1m_over_10k") + " (x 10k)"),
        ("tracing_cost", _fmt(r.get("tracing_cost"), 3), target("tracing_cost")),
    ]
    for engines, by_partitions in sorted((r.get("scaling") or {}).items()):
        for partitions, rate in sorted(by_partitions.items(), key=lambda kv: int(kv[0])):
            out.append(
                (f"sagas_per_s {engines} engine(s), {partitions} partition(s)", _fmt(rate), "")
            )
    return out


def print_table(r: dict[str, Any], stream: TextIO) -> None:
    table = Table(title="sagas bench")
    for column in ("figure", "value", "target"):
        table.add_column(column)
    for row in rows(r):
        table.add_row(*row)
    Console(file=stream, width=110).print(table)


def markdown(r: dict[str, Any]) -> str:
    """The summary table, the sweep and the machine, as Markdown."""
    lines = ["| figure | value | target |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows(r)]
    lines += ["", "| offered sagas/s | achieved sagas/s | p50 ms | p95 ms | p99 ms | unfinished |"]
    lines += ["|---|---|---|---|---|---|"]
    for s in r.get("sweep") or []:
        lines.append(
            f"| {s['offered']:.1f} | {s['achieved']:.1f} | {s['p50_ms']:.0f} | "
            f"{s['p95_ms']:.0f} | {s['p99_ms']:.0f} | {s['unfinished']} |"
        )
    m = r.get("machine") or {}
    lines += [
        "",
        f"Machine: {m.get('cpus')} CPUs ({m.get('cpu_model')}), {m.get('memory_gib')} GiB, "
        f"Python {m.get('python')}; load average at start {m.get('load_avg_at_start', 0):.1f}. "
        f"Run took {r.get('total_seconds', 0):.0f} s.",
    ]
    return "\n".join(lines)


def update_docs(path: Path, r: dict[str, Any]) -> None:
    """Replace the text between the result markers of ``path`` with `markdown` (r)."""
    text = path.read_text()
    block = f"{START}\n{markdown(r)}\n{END}"
    pattern = re.compile(re.escape(START) + r".*?" + re.escape(END), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text)
