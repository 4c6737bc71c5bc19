"""The load sweep as a PNG: achieved throughput and cycle-time percentiles against offered load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt  # after the backend is chosen


def plot(result: dict[str, Any], out: Path) -> None:
    """Write the sweep of ``result`` to ``out``."""
    steps = result["sweep"]
    offered = [s["offered"] for s in steps]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    left.plot(offered, [s["achieved"] for s in steps], "o-", label="achieved")
    left.plot(offered, offered, ":", color="grey", label="offered")
    left.axhline(result["sagas_per_s"], color="tab:red", ls="--", label="saturated (closed)")
    left.set_xlabel("offered load (sagas/s)")
    left.set_ylabel("completed sagas/s")
    left.set_title("Throughput")
    left.legend()
    for key, label in (("p99_ms", "p99"), ("p95_ms", "p95"), ("p50_ms", "p50")):
        right.plot(offered, [s[key] for s in steps], "o-", label=label)
    right.axhline(250, color="tab:red", ls="--", label="p99 target")
    right.set_yscale("log")
    right.set_xlabel("offered load (sagas/s)")
    right.set_ylabel("cycle time (ms, log)")
    right.set_title("End-to-end cycle time (open loop)")
    right.legend()
    m = result.get("machine", {})
    fig.suptitle(
        f"Order fulfilment saga, {m.get('cpus')} CPUs: broker, engine and participants together"
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
