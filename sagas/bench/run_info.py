"""What a bench run records about itself: its phases' timing, parameters and machine."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Progress = Callable[[str], None]


@dataclass
class Clock:
    """Announces each phase and records how long it took and the load when it began."""

    progress: Progress
    seconds: dict[str, float] = field(default_factory=dict)
    load: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, key: str, title: str) -> Iterator[None]:
        self.progress(f"[{time.strftime('%H:%M:%S')}] {title}")
        self.load[key] = os.getloadavg()[0]
        began = time.monotonic()
        try:
            yield
        finally:
            self.seconds[key] = time.monotonic() - began


def params(args: argparse.Namespace, sweep: tuple[float, ...]) -> dict[str, Any]:
    """The run's parameters, as recorded in the result."""
    return {
        "duration_s": args.duration,
        "ramp_s": args.ramp,
        "warmup": args.warmup,
        "step_s": args.step,
        "drain_s": args.drain,
        "sweep_fractions": list(sweep),
        "scaling": args.scaling,
        "state_scale": args.state_scale,
        "probe_hops": args.probe_hops,
        "probe_warmup": args.probe_warmup,
        # The framework participants' loop: the environment's choice, aiokafka by default.
        "participant_runner": os.environ.get("SERVICE_RUNNER", "aiokafka"),
        # How the engines write their batches (SAGAS_DELIVERY): the environment's choice.
        "engine_delivery": os.environ.get("SAGAS_DELIVERY", "transactional"),
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_gb, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_avg_at_start": os.getloadavg()[0],
    }
