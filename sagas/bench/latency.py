"""Open-loop sweep: achieved throughput and cycle time against offered load.

One phase (engine, participants instant or on the framework, fresh prefix). For each
offered rate, ascending, the generator sends orders at that constant arrival rate for
``step_s`` seconds, whatever the system does; the cycle time of an order is from the
moment it was due to the moment its ``OrderFulfilled`` was seen (read_committed).
Orders still running when the drain deadline (``drain_s`` after the last step) passes
count with the time they had waited by then (a lower bound), so overload shows as such
instead of vanishing from the sample.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from sagas.bench.harness import BenchError, Participants, Phase
from sagas.bench.load import ORDERS, Generator, Observer
from services.app import app as examples

MIN_SAMPLES = 5
"""Sagas a step offers in its sampled window at least (a low rate stretches the step)."""


@dataclass(frozen=True)
class Step:
    """One offered rate of the sweep."""

    offered: float
    achieved: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    samples: int
    unfinished: int


def quantile(values: Sequence[float], q: float) -> float:
    """The q-quantile (nearest rank) of ``values``; 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


async def sweep(
    bootstrap: str,
    workdir: Path,
    rates: Sequence[float],
    *,
    step_s: float = 12.0,
    skip_s: float | None = None,
    drain_s: float = 15.0,
    participants: Participants = "instant",
    progress: Callable[[str], None] = print,
) -> list[Step]:
    """Run the sweep over ``rates`` (sagas per second, ascending).

    The first ``skip_s`` of each step (by default 1 s, or a quarter of a shorter step)
    are not sampled: the system moves from the previous rate to this one. A step lasts
    long enough for ``MIN_SAMPLES`` sagas to be offered after that.
    """
    skip_s = min(1.0, step_s / 4) if skip_s is None else skip_s
    codec = examples.codec()
    windows: list[tuple[float, float, float, int, int]] = []
    phase = Phase(bootstrap, workdir, f"latency-{participants}", participants=participants)
    with phase:
        await phase.start()
        observer = Observer(bootstrap, phase.topic(ORDERS))
        async with asyncio.TaskGroup() as tg:
            watch = tg.create_task(observer.run())
            try:
                async with Generator(bootstrap, phase.topic(ORDERS), codec, "lat") as gen:
                    await gen.send(20)
                    await gen.flush()
                    if not await observer.wait_count(20, 180):
                        phase.check_alive()
                        raise BenchError("latency: warm-up did not complete")
                    for rate in rates:
                        first = gen.sent
                        t0 = time.monotonic()
                        # A low rate gets a longer step, so that its window holds samples.
                        await gen.open_loop(rate, max(step_s, skip_s + MIN_SAMPLES / rate))
                        t1 = time.monotonic()
                        windows.append((rate, t0, t1, first, gen.sent))
                        phase.check_alive()
                        progress(
                            f"    offered {rate:7.1f}/s: {observer.rate(t0 + skip_s, t1):7.1f}/s"
                        )
                    await observer.wait_count(gen.sent, drain_s)
                    end = time.monotonic()
                    steps = [_step(gen, observer, w, skip_s, end) for w in windows]
            finally:
                watch.cancel()
    codec.close()
    return steps


def _step(
    gen: Generator,
    observer: Observer,
    window: tuple[float, float, float, int, int],
    skip_s: float,
    end: float,
) -> Step:
    rate, t0, t1, first, last = window
    cycle: list[float] = []
    unfinished = 0
    for i in range(first, last):
        key = f"lat-{i}".encode()
        due = gen.sent_at[key]
        if due < t0 + skip_s:
            continue
        done = observer.done_at.get(key)
        if done is None:
            unfinished += 1
            done = end
        cycle.append((done - due) * 1000)
    return Step(
        offered=rate,
        achieved=observer.rate(t0 + skip_s, t1),
        p50_ms=quantile(cycle, 0.50),
        p95_ms=quantile(cycle, 0.95),
        p99_ms=quantile(cycle, 0.99),
        samples=len(cycle),
        unfinished=unfinished,
    )
