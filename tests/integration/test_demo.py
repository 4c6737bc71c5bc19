"""`sagas demo --json` runs the whole system as processes and reports a clean summary."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.timeout(400)
def test_demo_json_summary(kafka_bootstrap: str, tmp_path: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SAGAS_DEMO_DIR": str(tmp_path),
    }
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "sagas.ops.cli",
            "demo",
            "--orders",
            "40",
            "--hires",
            "20",
            "--warmup",
            "2",  # a short warm-up run first: its sagas are not counted below
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=380,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    orders = summary["sagas"]["order_fulfilment"]
    assert orders["placed"] == 40
    assert orders["placed_per_s"] == pytest.approx(10 * 40 / 60)  # the default steady rate
    assert orders["completed"] == 32  # 80% of the mix completes
    assert orders["compensated"] == 8  # declined and unshippable orders
    assert orders["failed"] == 0
    assert orders["cycle_ms"]["p50"] <= orders["cycle_ms"]["p95"] <= orders["cycle_ms"]["p99"]
    hires = summary["sagas"]["onboarding"]
    assert hires["placed"] == 20
    assert (hires["completed"], hires["compensated"], hires["failed"]) == (14, 6, 0)
    assert summary["invariants"]
    assert all(summary["invariants"].values()), summary
    assert "violations" not in summary
    # every process stopped on SIGTERM, within the grace, with status 0 (no SIGKILL)
    assert summary["stops"]["unclean"] == {}
    assert summary["stops"]["processes"] >= 11  # ten services and the engine
    assert list(tmp_path.glob("*/logs/engine-1.log"))
    # the warm-up ran as a system of its own, on topics and stores of its own
    assert list(tmp_path.glob("*/warmup/logs/engine-1.log"))
    assert list(tmp_path.glob("*/warmup/engine-1.sqlite3"))
