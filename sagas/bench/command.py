"""`sagas bench`: run every phase on one broker, print a table, write JSON and a plot."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagas.bench import report
from sagas.bench.harness import BenchError, bench_broker
from sagas.bench.latency import sweep
from sagas.bench.relay import run_relay
from sagas.bench.saga_run import run_saturated
from sagas.errors import SagasError

SWEEP = (0.25, 0.5, 0.75, 1.0, 1.25)
"""Offered load of the sweep, as fractions of the saturated rate (0.5 gives latency_ms)."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure throughput, latency, scaling and costs")
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.add_argument("--out", type=Path, help="also write the JSON result to this file")
    bench.add_argument("--plot", type=Path, help="write the load sweep plot (PNG) here")
    bench.add_argument("--docs", type=Path, help="regenerate the results table in this file")
    bench.add_argument("--profile", type=Path, help="py-spy profile of the saturated engine")
    bench.add_argument("--duration", type=float, default=15.0, help="seconds per saturation run")
    bench.add_argument("--ramp", type=float, default=3.0, help="seconds before measuring")
    bench.add_argument(
        "--warmup", type=int, default=50, help="orders run to completion before measuring"
    )
    bench.add_argument("--step", type=float, default=10.0, help="seconds per sweep step")
    bench.add_argument(
        "--scaling",
        default="1:1,1:3,1:12,2:1,2:3,2:12",
        help="ENGINES:PARTITIONS runs of the scaling phase, comma-separated",
    )
    bench.add_argument(
        "--state-scale",
        type=float,
        default=1.0,
        help="scale the stored-saga counts of restore_s_100k and rss_mb (smoke tests)",
    )
    bench.add_argument("--skip-state", action="store_true", help="leave restore and rss out")
    bench.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    bench.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sagas-bench-"))
    try:
        # The dev broker starts and stops outside the event loop (its start is blocking).
        with bench_broker(workdir) as bootstrap:
            result = asyncio.run(run_all(args, bootstrap, workdir, _progress))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            _progress(f"work folder kept: {workdir}")
    report.print_table(result, sys.stderr if args.json else sys.stdout)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.plot:
        from sagas.bench.plot import plot

        plot(result, args.plot)
    if args.docs:
        report.update_docs(args.docs, result)
    if args.json:
        print(text)
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _phase(progress: Callable[[str], None], name: str) -> float:
    progress(f"[{time.strftime('%H:%M:%S')}] {name}")
    return time.monotonic()


async def run_all(
    args: argparse.Namespace, bootstrap: str, workdir: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    """Every phase, in order, on one broker; the result object."""
    began = time.monotonic()
    result: dict[str, Any] = {"machine": machine(), "params": _params(args)}
    phases: dict[str, float] = {}
    t = _phase(progress, "relay: raw consume -> produce path at saturation")
    relayed = await run_relay(
        bootstrap, workdir, duration_s=args.duration, ramp_s=args.ramp, progress=progress
    )
    result["raw_relay_msgs_per_s"] = 2 * relayed  # each record: consumed + produced
    result["raw_relay_records_per_s"] = relayed
    phases["relay"] = time.monotonic() - t

    t = _phase(progress, "saga: order fulfilment at saturation (6 partitions, 1 engine)")
    main_run = await run_saturated(
        bootstrap,
        workdir,
        "saga",
        count_messages=True,
        profile=args.profile,
        warmup=args.warmup,
        duration_s=args.duration,
        ramp_s=args.ramp,
        progress=progress,
    )
    assert main_run.messages is not None
    if main_run.sagas_per_s <= 0:
        raise BenchError("no saga completed during the saturation window; see --keep logs")
    per_saga = main_run.messages.per_saga
    result["sagas_per_s"] = main_run.sagas_per_s
    result["saga_msgs_per_s"] = main_run.sagas_per_s * per_saga
    result["ratio"] = result["saga_msgs_per_s"] / max(result["raw_relay_msgs_per_s"], 1e-9)
    result["msgs_per_saga"] = {
        "total": per_saga,
        "consumed": main_run.messages.consumed / main_run.messages.sagas,
        "produced": main_run.messages.produced / main_run.messages.sagas,
        "records_by_topic": main_run.messages.by_topic,
        "sagas_counted": main_run.messages.sagas,
    }
    result["engine_cpu_at_saturation"] = main_run.engine_cpu
    result["participants_cpu_at_saturation"] = main_run.participants_cpu
    phases["saga"] = time.monotonic() - t

    t = _phase(progress, "sweep: open loop at fractions of the saturated rate")
    rates = [f * main_run.sagas_per_s for f in SWEEP]
    steps = await sweep(bootstrap, workdir, rates, step_s=args.step, progress=progress)
    result["sweep"] = [{"fraction": f, **s.__dict__} for f, s in zip(SWEEP, steps, strict=True)]
    half = steps[SWEEP.index(0.5)]
    result["latency_ms"] = {
        "p50": half.p50_ms,
        "p95": half.p95_ms,
        "p99": half.p99_ms,
        "offered_sagas_per_s": half.offered,
        "samples": half.samples,
    }
    phases["sweep"] = time.monotonic() - t

    t = _phase(progress, "tracing: saturation with spans exported to a file")
    traced = await run_saturated(
        bootstrap,
        workdir,
        "traced",
        env={"SAGAS_TELEMETRY": "file"},
        warmup=args.warmup,
        duration_s=args.duration,
        ramp_s=args.ramp,
        progress=progress,
    )
    result["tracing"] = {"off": main_run.sagas_per_s, "file": traced.sagas_per_s}
    result["tracing_cost"] = traced.sagas_per_s / max(main_run.sagas_per_s, 1e-9)
    phases["tracing"] = time.monotonic() - t

    t = _phase(progress, "scaling: engines x partitions")
    scaling: dict[str, dict[str, float | None]] = {}
    for engines, partitions in _grid(args.scaling):
        progress(f"  {engines} engine(s), {partitions} partition(s)")
        rate: float | None = None
        try:
            run = await run_saturated(
                bootstrap,
                workdir,
                f"scale{engines}x{partitions}",
                engines=engines,
                partitions=partitions,
                warmup=args.warmup,
                duration_s=args.duration,
                ramp_s=args.ramp,
                progress=progress,
            )
            rate = run.sagas_per_s
        except* SagasError as group:
            # One configuration that cannot run (e.g. engines that never settle who owns
            # which partition) is a finding, reported; it must not lose every figure.
            # (except*: the run's TaskGroup wraps its errors in an ExceptionGroup.)
            message = "; ".join(str(e) for e in group.exceptions)
            result.setdefault("errors", {})[f"scaling.{engines}x{partitions}"] = message[:2000]
            progress(f"    not measured: {message[:300]}")
        scaling.setdefault(str(engines), {})[str(partitions)] = rate
    result["scaling"] = scaling
    phases["scaling"] = time.monotonic() - t

    if not args.skip_state:
        await _state(result, phases, bootstrap, workdir, args.state_scale, progress)
    result["phase_seconds"] = phases
    result["total_seconds"] = time.monotonic() - began
    result["targets"] = report.targets(result)
    return result


async def _state(
    result: dict[str, Any],
    phases: dict[str, float],
    bootstrap: str,
    workdir: Path,
    scale: float,
    progress: Callable[[str], None],
) -> None:
    """restore_s_100k and rss_mb, from sagas.bench.state (the store's own bench)."""
    from sagas.bench import state

    n_restore = max(int(100_000 * scale), 1)
    t = _phase(progress, f"restore: take over a partition of {n_restore} sagas")
    errors: dict[str, str] = result.setdefault("errors", {})
    result["restore_s_100k"] = await _call(
        errors, "restore_s_100k", progress, state.restore_s, n_restore, bootstrap, workdir
    )
    phases["restore"] = time.monotonic() - t
    rss: dict[str, float | None] = {}
    # The million-saga store is a few GB: written to tmpfs when the machine has one
    # (filling it on this machine's disk took tens of minutes). SQLite reads it with
    # read(), not mmap, so its pages count in the page cache, not in the engine's RSS.
    state_dir = _rss_dir(workdir)
    try:
        for label, n in (("10k", 10_000), ("1m", 1_000_000)):
            scaled = max(int(n * scale), 1)
            t = _phase(progress, f"rss: engine memory with {scaled} sagas stored")
            rss[label] = await _call(
                errors, f"rss_mb.{label}", progress, state.rss_mb, scaled, bootstrap, state_dir
            )
            phases[f"rss_{label}"] = time.monotonic() - t
    finally:
        if state_dir != workdir:
            shutil.rmtree(state_dir, ignore_errors=True)
    result["rss_mb"] = rss
    result["params"]["state_counts"] = {"restore": n_restore, "rss": [10_000 * scale, 1e6 * scale]}


def _rss_dir(workdir: Path) -> Path:
    """A fresh folder on /dev/shm when there is one, else ``workdir``."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="sagas-bench-rss-", dir=shm)) if shm.is_dir() else workdir


async def _call(
    errors: dict[str, str], key: str, progress: Callable[[str], None], fn: Any, *args: Any
) -> float | None:
    """``fn(*args)`` (sync or async) as a float; a bench error is recorded, not raised,
    so the figures of the other phases are still reported."""
    try:
        value = fn(*args)
        if inspect.isawaitable(value):
            value = await value
    except SagasError as exc:
        errors[key] = str(exc)[:2000]
        progress(f"    {key} not measured: {str(exc)[:300]}")
        return None
    return float(value)


def _grid(spec: str) -> list[tuple[int, int]]:
    pairs = []
    for item in spec.split(","):
        engines, partitions = item.split(":")
        pairs.append((int(engines), int(partitions)))
    return pairs


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "duration_s": args.duration,
        "ramp_s": args.ramp,
        "warmup": args.warmup,
        "step_s": args.step,
        "sweep_fractions": list(SWEEP),
        "scaling": args.scaling,
        "state_scale": args.state_scale,
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
