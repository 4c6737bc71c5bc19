"""The order saga at saturation: sagas and engine messages per second, CPU per saga.

One phase: engine process(es) and the participants (instant, or on the participant
framework: see `sagas.bench.harness.Phase`) under a fresh prefix. A warm-up of
``warmup`` orders is run to completion first (and, when asked, the records it left are
counted to get the messages one saga costs). Then the generator keeps a backlog of
orders in front of the engine (``BACKLOG_MIN`` orders, or ``BACKLOG_S`` seconds of
completions, sent but not completed) and completions are counted over ``duration_s``
after a ramp. The CPU time of each component (`sagas.bench.cpu`) is read at both ends
of the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sagas.bench.count import MessageCount, count_records, engine_messages
from sagas.bench.cpu import usage
from sagas.bench.harness import BenchError, Participants, Phase
from sagas.bench.load import ORDERS, Generator, Observer
from services.app import app as examples

Progress = Callable[[str], None]

BACKLOG_MIN = 1000
BACKLOG_S = 4.0
"""The saturation backlog: at least ``BACKLOG_MIN`` orders, or ``BACKLOG_S`` seconds of
completions, sent but not completed. By Little's law a closed loop completes at most
backlog / cycle time; with 200 and cycle times of 2.5 s at saturation the bench itself
capped the engine at 80 sagas/s (the same figure at 1 and 3 partitions). Measured on
the 2-core machine: backlog 200 -> 59.9 sagas/s, 1000 -> 73.2, 3000 -> 98.9 over 30 s
(196 over a 15 s window: bursts), 6000 -> 77.9."""

MIN_COMPLETIONS = 20
"""Fewest completions a saturation window counts (it is extended until then)."""


@dataclass
class SagaRun:
    """What one saturation run measured.

    Attributes:
        cpu_per_s: CPU seconds per second of each component during the window
            (`sagas.bench.cpu.usage`: engine, participants, broker, bench, totals).
        cpu_per_1000: CPU seconds per 1,000 sagas completed in the window, the same keys.
    """

    sagas_per_s: float
    completed: int
    window_s: float
    cpu_per_s: dict[str, float | None]
    cpu_per_1000: dict[str, float | None]
    messages: MessageCount | None = None
    timeline: list[tuple[float, float]] = field(default_factory=list)

    @property
    def engine_cpu(self) -> float:
        """Engine CPU seconds per second (all engine processes) during the window."""
        return self.cpu_per_s["engine"] or 0.0

    @property
    def participants_cpu(self) -> float:
        return self.cpu_per_s["participants"] or 0.0


async def run_saturated(
    bootstrap: str,
    workdir: Path,
    name: str,
    *,
    partitions: int = 6,
    engines: int = 1,
    env: Mapping[str, str] | None = None,
    participants: Participants = "instant",
    broker_pid: int | None = None,
    duration_s: float = 15.0,
    ramp_s: float = 3.0,
    warmup: int = 50,
    count_messages: bool = False,
    profile: Path | None = None,
    progress: Progress = print,
) -> SagaRun:
    """Run one saturation phase; see the module docstring."""
    codec = examples.codec()
    phase = Phase(
        bootstrap, workdir, name, partitions, engines, env or {}, participants, broker_pid
    )
    with phase:
        await phase.start()
        observer = Observer(bootstrap, phase.topic(ORDERS))
        async with asyncio.TaskGroup() as tg:
            watch = tg.create_task(observer.run())
            try:
                async with Generator(bootstrap, phase.topic(ORDERS), codec, name) as gen:
                    await gen.send(warmup)
                    await gen.flush()
                    if not await observer.wait_count(warmup, 180):
                        phase.check_alive()
                        raise BenchError(f"{name}: warm-up did not complete ({observer.count})")
                    messages = None
                    if count_messages:
                        counts = await count_records(bootstrap, phase.prefix)
                        messages = engine_messages(counts, warmup)
                    run = await _measure(
                        phase, observer, gen, duration_s, ramp_s, profile, progress
                    )
                    run.messages = messages
            finally:
                watch.cancel()
    codec.close()
    return run


async def _measure(
    phase: Phase,
    observer: Observer,
    gen: Generator,
    duration_s: float,
    ramp_s: float,
    profile: Path | None,
    progress: Progress,
) -> SagaRun:
    def backlog() -> int:
        now = time.monotonic()
        return max(BACKLOG_MIN, int(observer.rate(now - 2, now) * BACKLOG_S))

    stop = asyncio.Event()
    meter = phase.cpu()
    async with asyncio.TaskGroup() as tg:
        tg.create_task(gen.keep_backlog(lambda: observer.count, backlog, stop))
        try:
            await asyncio.sleep(ramp_s)  # ramp: the backlog reaches the engine
            await _completions_flow(phase, observer, deadline_s=60)
            spy = _start_profile(profile, phase.engine_procs[0].pid, duration_s)
            t0, cpu0, first = time.monotonic(), meter.read(), observer.count
            timeline = []
            # The window lasts ``duration_s`` and, on a slow machine whose engine commits
            # in bursts, until MIN_COMPLETIONS sagas completed in it (60 s more at most).
            end, limit = t0 + duration_s, t0 + duration_s + 60
            while (now := time.monotonic()) < end or (
                observer.count - first < MIN_COMPLETIONS and now < limit
            ):
                await asyncio.sleep(min(1.0, max(end - now, 0.2)))
                now = time.monotonic()
                timeline.append((now - t0, observer.rate(now - 1, now)))
                phase.check_alive()
            t1, cpu1 = time.monotonic(), meter.read()
            rate = observer.rate(t0, t1)
            completed = round(rate * (t1 - t0))
            progress(f"    {rate:8.1f} sagas/s over {t1 - t0:.0f}s")
        finally:
            stop.set()
    if spy is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            spy.wait(timeout=30)
    return SagaRun(
        rate,
        completed,
        t1 - t0,
        cpu_per_s=usage(cpu0, cpu1, t1 - t0),
        cpu_per_1000=usage(cpu0, cpu1, max(completed, 1) / 1000),
        timeline=timeline,
    )


async def _completions_flow(phase: Phase, observer: Observer, deadline_s: float) -> None:
    """Wait until backlogged sagas complete (a loaded machine can take long to start)."""
    end = time.monotonic() + deadline_s
    while True:
        phase.check_alive()
        now = time.monotonic()
        if observer.rate(now - 1, now) > 0 or now > end:
            return
        await asyncio.sleep(0.1)  # poll interval while the backlog reaches the engine


def _start_profile(out: Path | None, pid: int, duration_s: float) -> subprocess.Popen[bytes] | None:
    """py-spy on the engine for the window (when asked and installed)."""
    beside = Path(sys.executable).parent / "py-spy"  # installed in the venv
    spy = str(beside) if beside.exists() else shutil.which("py-spy")
    if out is None or spy is None:
        return None
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [spy, "record", "-o", str(out), "--pid", str(pid), "--duration", str(int(duration_s))]
    if out.suffix == ".txt":
        argv += ["--format", "raw"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
