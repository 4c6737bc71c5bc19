"""The demo's summary: per saga type counts, rates, cycle times; invariants."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

from sagas.dev.outcomes import Outcome


def percentile(values: Sequence[float], q: float) -> int | None:
    """Nearest-rank percentile (``q`` in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return round(ordered[rank - 1])


def saga_summary(outcomes: Sequence[Outcome], placed: int) -> dict[str, Any]:
    counts = {
        s: sum(1 for o in outcomes if o.state == s) for s in ("COMPLETED", "COMPENSATED", "FAILED")
    }
    ended = sum(counts.values())
    cycles = [c for o in outcomes if (c := o.cycle_ms) is not None]
    return {
        "placed": placed,
        "completed": counts["COMPLETED"],
        "compensated": counts["COMPENSATED"],
        "failed": counts["FAILED"],
        "not_ended": placed - ended,
        "completion_rate": round(counts["COMPLETED"] / placed, 4) if placed else None,
        "compensation_rate": round(counts["COMPENSATED"] / placed, 4) if placed else None,
        "error_rate": round(counts["FAILED"] / placed, 4) if placed else None,
        "unexpected_outcomes": 0,
        "cycle_ms": {f"p{q}": percentile(cycles, q) for q in (50, 95, 99)},
    }


def render(summary: Mapping[str, Any], console: Console) -> None:
    table = Table(title="Sagas")
    for col in (
        "saga",
        "placed",
        "per s",
        "completed",
        "compensated",
        "failed",
        "not ended",
        "completion",
        "errors",
        "p50 ms",
        "p95 ms",
        "p99 ms",
    ):
        table.add_column(col, justify="left" if col == "saga" else "right")
    for name, s in summary["sagas"].items():
        c = s["cycle_ms"]
        table.add_row(
            name,
            str(s["placed"]),
            "burst" if s.get("placed_per_s") is None else f"{s['placed_per_s']:.1f}",
            str(s["completed"]),
            str(s["compensated"]),
            str(s["failed"]),
            str(s["not_ended"]),
            _pct(s["completion_rate"]),
            _pct(s["error_rate"]),
            str(c["p50"]),
            str(c["p95"]),
            str(c["p99"]),
        )
    console.print(table)
    inv = Table(title="Invariants (from the services' own stores)")
    inv.add_column("invariant")
    inv.add_column("holds")
    for name, ok in summary["invariants"].items():
        inv.add_row(name, "[green]yes[/green]" if ok else "[red]NO[/red]")
    console.print(inv)
    for name, problems in summary.get("violations", {}).items():
        console.print(f"[red]{name}[/red]: {'; '.join(problems[:5])}")
    stops = summary.get("stops")
    if stops is not None:
        unclean = stops["unclean"]
        if unclean:
            listed = "; ".join(f"{name}: {why}" for name, why in unclean.items())
            console.print(f"[red]not stopped cleanly on SIGTERM[/red]: {listed}")
        else:
            console.print(f"{stops['processes']} processes stopped cleanly on SIGTERM")


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"
