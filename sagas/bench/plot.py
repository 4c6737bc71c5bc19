"""The load sweeps as a PNG: achieved throughput and cycle-time percentiles against
offered load, with the instant participants and with the participants on the framework."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # after the backend is chosen

from sagas.bench.targets import LATENCY_P99_MS

STYLES = {"instant": "o-", "framework": "s--"}


def plot(result: dict[str, Any], out: Path) -> None:
    """Write the sweeps of ``result`` to ``out``."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    top = 0.0
    for kind, entry in (result.get("order_saga") or {}).items():
        steps = entry.get("sweep") or []
        if not steps:
            continue
        offered = [s["offered"] for s in steps]
        top = max(top, *offered)
        left.plot(offered, [s["achieved"] for s in steps], STYLES[kind], label=f"{kind}")
        for key, label in (("p99_ms", "p99"), ("p50_ms", "p50")):
            right.plot(offered, [s[key] for s in steps], STYLES[kind], label=f"{kind} {label}")
    left.plot([0, top], [0, top], ":", color="grey", label="offered")
    left.set_xlabel("offered load (sagas/s)")
    left.set_ylabel("completed sagas/s")
    left.set_title("Throughput (participants: instant, framework)")
    left.legend()
    right.axhline(LATENCY_P99_MS, color="tab:red", ls="--", label="p99 target")
    floor = (result.get("hop_probe") or {}).get("floor_ms")
    if floor:
        right.axhline(floor, color="grey", ls=":", label="floor of the hops")
    right.set_yscale("log")
    right.set_xlabel("offered load (sagas/s)")
    right.set_ylabel("cycle time (ms, log)")
    right.set_title("End-to-end cycle time (open loop)")
    right.legend(fontsize="small")
    m = result.get("machine", {})
    fig.suptitle(
        f"Order fulfilment saga, {m.get('cpus')} CPUs: broker, engine and participants together"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
