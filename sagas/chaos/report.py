"""The report of a chaos run: one JSON object, or tables on the terminal.

Shape: ``{"seed", "sagas", "outcomes", "faults", "violations", "recovery_s",
"duration_s", "notes", "examples", "replay", "workdir"}``; ``violations`` counts by
kind, ``examples`` gives the first few messages of each kind.
"""

from __future__ import annotations

import statistics
from typing import Any

from rich.console import Console
from rich.table import Table

from sagas.chaos.context import RunContext
from sagas.chaos.runner import ChaosPlan, Outcome

EXAMPLES = 5
"""Messages shown per violation kind."""


def replay_command(plan: ChaosPlan) -> str:
    """The command line that replays ``plan`` (same seed: same schedule)."""
    counts = ",".join(f"{k}={n}" for k, n in sorted(plan.counts.items()))
    return (
        f"sagas chaos --seed {plan.seed} --sagas {plan.sagas} --engines {plan.engines} "
        f"--rate {plan.rate:g} --faults {counts}"
    )


def build(plan: ChaosPlan, outcome: Outcome) -> dict[str, Any]:
    """The JSON report of a run."""
    ctx: RunContext = outcome.ctx
    recovery = {
        kind: {"max": max(values), "mean": round(statistics.fmean(values), 2), "n": len(values)}
        for kind, values in sorted(ctx.recovery.items())
        if values
    }
    return {
        "seed": plan.seed,
        "sagas": ctx.placed_count(),
        "sagas_requested": plan.sagas,
        "outcomes": dict(sorted(outcome.final_states.items())),
        "faults": dict(sorted(ctx.faults.items())),
        "faults_scheduled": len(plan.schedule),
        "violations": {k: len(v) for k, v in sorted(outcome.violations.items())},
        "recovery_s": recovery,
        "duration_s": outcome.duration_s,
        "notes": dict(sorted(ctx.notes.items())),
        "examples": {k: v[:EXAMPLES] for k, v in sorted(outcome.violations.items())},
        "replay": replay_command(plan),
        "workdir": str(plan.workdir),
    }


def render(report: dict[str, Any], console: Console) -> None:
    """The report as tables."""
    head = Table(title=f"Chaos run, seed {report['seed']}", show_header=False)
    head.add_row("sagas placed", f"{report['sagas']} of {report['sagas_requested']}")
    head.add_row("ended", ", ".join(f"{k} {v}" for k, v in report["outcomes"].items()) or "-")
    head.add_row("duration", f"{report['duration_s']:.0f} s")
    for key, value in report["notes"].items():
        head.add_row(key, str(value))
    console.print(head)
    faults = Table(title="Faults injected")
    for col in ("kind", "injected", "recovery max (s)", "recovery mean (s)"):
        faults.add_column(col, justify="left" if col == "kind" else "right")
    for kind, n in report["faults"].items():
        rec = report["recovery_s"].get(kind, {})
        faults.add_row(kind, str(n), str(rec.get("max", "-")), str(rec.get("mean", "-")))
    console.print(faults)
    if report["violations"]:
        table = Table(title="Violations", style="red")
        table.add_column("kind")
        table.add_column("count", justify="right")
        table.add_column("examples")
        for kind, n in report["violations"].items():
            table.add_row(kind, str(n), "\n".join(report["examples"][kind]))
        console.print(table)
    else:
        console.print("[green]no violations[/green]")
    console.print(f"replay: {report['replay']}")
    console.print(f"work folder: {report['workdir']}")
