"""Every phase of `sagas bench`, in order, on one broker: the result object.

Kafka's own limits first, on a quiet broker: the raw relay and the hop probe. Then the
order saga with the instant participants (saturation with the messages one saga costs,
the open-loop sweep), the same with the participants on the framework, tracing,
scaling, and restore and memory (`sagas.bench.state`). Every phase's duration and the
load average when it began are recorded; every throughput and latency figure carries
the relay's and the probe's figures of the same run (``reference``).
"""

from __future__ import annotations

import argparse
import inspect
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from sagas.bench.harness import BenchBroker, BenchError, Participants, new_prefix
from sagas.bench.latency import Step, sweep
from sagas.bench.probe import KINDS, probe, saga_hops
from sagas.bench.relay import run_relay
from sagas.bench.run_info import Clock, Progress, machine, params
from sagas.bench.saga_run import SagaRun, run_saturated
from sagas.bench.targets import targets
from sagas.errors import SagasError
from services.definitions.order_fulfilment import ORDER_FULFILMENT

SWEEP = (0.25, 0.5, 0.75, 1.0, 1.25)
"""Offered load of the sweep, as fractions of the saturated rate (0.5 gives latency_ms)."""

PARTICIPANTS: tuple[Participants, ...] = ("instant", "framework")


async def run_all(
    args: argparse.Namespace, broker: BenchBroker, workdir: Path, progress: Progress
) -> dict[str, Any]:
    """Every phase, in order, on one broker; the result object."""
    began = time.monotonic()
    result: dict[str, Any] = {"machine": machine(), "params": params(args, SWEEP)}
    result["machine"]["broker_pid_known"] = broker.pid is not None
    clock = Clock(progress)
    with clock.phase("relay", "relay: raw consume -> produce path at saturation"):
        relayed = await run_relay(
            broker.bootstrap,
            workdir,
            duration_s=args.duration,
            ramp_s=args.ramp,
            progress=progress,
        )
    result["raw_relay_msgs_per_s"] = 2 * relayed  # each record: consumed + produced
    result["raw_relay_records_per_s"] = relayed
    with clock.phase("probe", f"probe: {args.probe_hops} hops of each kind, one in flight"):
        await _probe(result, args, broker.bootstrap, progress)
    result["order_saga"] = {}
    for participants in PARTICIPANTS:
        await _order_saga(result, args, broker, workdir, participants, clock)
    with clock.phase("tracing", "tracing: saturation with spans exported to a file"):
        await _tracing(result, args, broker, workdir, progress)
    with clock.phase("scaling", "scaling: engines x partitions"):
        await _scaling(result, args, broker, workdir, progress)
    if not args.skip_state:
        await _state(result, clock, broker.bootstrap, workdir, args.state_scale)
    _references(result)
    result["phase_seconds"] = clock.seconds
    result["phase_load_avg"] = clock.load
    result["total_seconds"] = time.monotonic() - began
    result["targets"] = targets(result)
    return result


async def _probe(
    result: dict[str, Any], args: argparse.Namespace, bootstrap: str, progress: Progress
) -> None:
    found: dict[str, Any] = {}
    prefix = new_prefix("probe")
    for kind in KINDS:
        hops = await probe(bootstrap, prefix, kind, hops=args.probe_hops, warmup=args.probe_warmup)
        found[kind] = asdict(hops)
        progress(f"    {kind}: p50 {hops.p50_ms:.1f} ms, p99 {hops.p99_ms:.1f} ms a hop")
    result["hop_probe"] = found


def _floor(result: dict[str, Any], routed: bool) -> None:
    """The saga's hops (counted from the definition) and their floor at the probe's p50."""
    probe_ = result["hop_probe"]
    hops = saga_hops(ORDER_FULFILMENT, routed)
    txn, idem = probe_["transactional"], probe_["idempotent"]
    probe_["saga_hops"] = {
        "transactional": hops.transactional,
        "idempotent": hops.idempotent,
        "total": hops.total,
        "routed_start": routed,
        "counted": "per stage: an engine hop (command) and a participant hop (reply); "
        "one engine hop for the end event; the router's hop when starts are routed",
    }
    probe_["floor_ms"] = hops.transactional * txn["p50_ms"] + hops.idempotent * idem["p50_ms"]


async def _order_saga(
    result: dict[str, Any],
    args: argparse.Namespace,
    broker: BenchBroker,
    workdir: Path,
    participants: Participants,
    clock: Clock,
) -> None:
    """Saturation, then the sweep, with ``participants``; the instant run also counts
    the messages a saga costs (and so whether its path has the router's hop)."""
    instant = participants == "instant"
    entry: dict[str, Any] = {}
    result["order_saga"][participants] = entry
    title = f"saga: order fulfilment at saturation, {participants} participants (6 partitions)"
    with clock.phase(f"saga_{participants}", title):
        run = await _guarded(
            result,
            f"order_saga.{participants}",
            clock.progress,
            run_saturated(
                broker.bootstrap,
                workdir,
                f"saga-{participants}",
                count_messages=instant,
                participants=participants,
                broker_pid=broker.pid,
                profile=args.profile if instant else None,
                warmup=args.warmup,
                duration_s=args.duration,
                ramp_s=args.ramp,
                progress=clock.progress,
            ),
        )
    if run is None or run.sagas_per_s <= 0:
        if instant:
            raise BenchError("no saga completed during the saturation window; see --keep logs")
        return
    entry.update(_saturation(run))
    if instant:
        _instant_figures(result, run)
    with clock.phase(f"sweep_{participants}", f"sweep: open loop, {participants} participants"):
        steps = await _guarded(
            result,
            f"sweep.{participants}",
            clock.progress,
            sweep(
                broker.bootstrap,
                workdir,
                [f * run.sagas_per_s for f in SWEEP],
                step_s=args.step,
                drain_s=args.drain,
                participants=participants,
                progress=clock.progress,
            ),
        )
    if steps is not None:
        entry.update(_latency(steps))
        if instant:
            result["sweep"], result["latency_ms"] = entry["sweep"], dict(entry["latency_ms"])


async def _guarded(result: dict[str, Any], key: str, progress: Progress, work: Any) -> Any:
    """``await work``; a bench error is recorded under ``errors`` and gives None, so
    one phase that cannot run does not lose every other figure."""
    try:
        return await work
    except* SagasError as group:  # except*: a phase's TaskGroup wraps its errors
        message = "; ".join(str(e) for e in group.exceptions)
        result.setdefault("errors", {})[key] = message[:2000]
        progress(f"    {key} not measured: {message[:300]}")
    return None


def _saturation(run: SagaRun) -> dict[str, Any]:
    return {
        "sagas_per_s": run.sagas_per_s,
        "completed": run.completed,
        "window_s": run.window_s,
        "cpu_s_per_1000_sagas": run.cpu_per_1000,
        "cpu_s_per_s": run.cpu_per_s,
    }


def _latency(steps: list[Step]) -> dict[str, Any]:
    half = steps[SWEEP.index(0.5)]
    return {
        "sweep": [{"fraction": f, **asdict(s)} for f, s in zip(SWEEP, steps, strict=True)],
        "latency_ms": {
            "p50": half.p50_ms,
            "p95": half.p95_ms,
            "p99": half.p99_ms,
            "offered_sagas_per_s": half.offered,
            "samples": half.samples,
        },
    }


def _instant_figures(result: dict[str, Any], run: SagaRun) -> None:
    """The figures of earlier runs (instant participants), at the top level."""
    assert run.messages is not None
    per_saga = run.messages.per_saga
    result["sagas_per_s"] = run.sagas_per_s
    result["saga_msgs_per_s"] = run.sagas_per_s * per_saga
    result["ratio"] = result["saga_msgs_per_s"] / max(result["raw_relay_msgs_per_s"], 1e-9)
    result["msgs_per_saga"] = {
        "total": per_saga,
        "consumed": run.messages.consumed / run.messages.sagas,
        "produced": run.messages.produced / run.messages.sagas,
        "records_by_topic": run.messages.by_topic,
        "sagas_counted": run.messages.sagas,
    }
    result["engine_cpu_at_saturation"] = run.engine_cpu
    result["participants_cpu_at_saturation"] = run.participants_cpu
    _floor(result, routed=run.messages.routed_starts > 0)


async def _tracing(
    result: dict[str, Any],
    args: argparse.Namespace,
    broker: BenchBroker,
    workdir: Path,
    progress: Progress,
) -> None:
    traced = await _guarded(
        result,
        "tracing",
        progress,
        run_saturated(
            broker.bootstrap,
            workdir,
            "traced",
            env={"SAGAS_TELEMETRY": "file"},
            broker_pid=broker.pid,
            warmup=args.warmup,
            duration_s=args.duration,
            ramp_s=args.ramp,
            progress=progress,
        ),
    )
    rate = None if traced is None else traced.sagas_per_s
    result["tracing"] = {"off": result["sagas_per_s"], "file": rate}
    result["tracing_cost"] = None if rate is None else rate / max(result["sagas_per_s"], 1e-9)


async def _scaling(
    result: dict[str, Any],
    args: argparse.Namespace,
    broker: BenchBroker,
    workdir: Path,
    progress: Progress,
) -> None:
    scaling: dict[str, dict[str, float | None]] = {}
    for engines, partitions in grid(args.scaling):
        progress(f"  {engines} engine(s), {partitions} partition(s)")
        run = await _guarded(
            result,
            f"scaling.{engines}x{partitions}",
            progress,
            run_saturated(
                broker.bootstrap,
                workdir,
                f"scale{engines}x{partitions}",
                engines=engines,
                partitions=partitions,
                broker_pid=broker.pid,
                warmup=args.warmup,
                duration_s=args.duration,
                ramp_s=args.ramp,
                progress=progress,
            ),
        )
        rate = None if run is None else run.sagas_per_s
        scaling.setdefault(str(engines), {})[str(partitions)] = rate
    result["scaling"] = scaling


def _references(result: dict[str, Any]) -> None:
    """Put the relay's and the probe's figures beside every throughput/latency figure."""
    probe_ = result.get("hop_probe") or {}
    reference = {
        "raw_relay_msgs_per_s": result.get("raw_relay_msgs_per_s"),
        "raw_relay_records_per_s": result.get("raw_relay_records_per_s"),
        "probe_p50_ms": {k: (probe_.get(k) or {}).get("p50_ms") for k in KINDS},
        "probe_p99_ms": {k: (probe_.get(k) or {}).get("p99_ms") for k in KINDS},
        "saga_hops": (probe_.get("saga_hops") or {}).get("total"),
        "saga_hops_floor_ms": probe_.get("floor_ms"),
    }
    result["reference"] = reference
    for entry in (result.get("order_saga") or {}).values():
        entry["reference"] = reference
        if "latency_ms" in entry:
            entry["latency_ms"]["reference"] = reference
    for key in ("latency_ms", "tracing"):
        if isinstance(result.get(key), dict):
            result[key]["reference"] = reference
    result["scaling_reference"] = reference


def grid(spec: str) -> list[tuple[int, int]]:
    """``"1:1,2:6"`` -> ``[(1, 1), (2, 6)]`` (engines, partitions)."""
    pairs = []
    for item in spec.split(","):
        engines, partitions = item.split(":")
        pairs.append((int(engines), int(partitions)))
    return pairs


async def _state(
    result: dict[str, Any], clock: Clock, bootstrap: str, workdir: Path, scale: float
) -> None:
    """restore_s_100k and rss_mb, from sagas.bench.state (the store's own bench)."""
    from sagas.bench import state

    n_restore = max(int(100_000 * scale), 1)
    errors: dict[str, str] = {}
    with clock.phase("restore", f"restore: take over a partition of {n_restore} sagas"):
        result["restore_s_100k"] = await _call(
            errors,
            "restore_s_100k",
            clock.progress,
            state.restore_s,
            n_restore,
            bootstrap,
            workdir,
        )
    rss: dict[str, float | None] = {}
    # The million-saga store is a few GB: written to tmpfs when the machine has one
    # (filling it on this machine's disk took tens of minutes). SQLite reads it with
    # read(), not mmap, so its pages count in the page cache, not in the engine's RSS.
    state_dir = _rss_dir(workdir)
    try:
        for label, n in (("10k", 10_000), ("1m", 1_000_000)):
            scaled = max(int(n * scale), 1)
            with clock.phase(f"rss_{label}", f"rss: engine memory with {scaled} sagas stored"):
                rss[label] = await _call(
                    errors,
                    f"rss_mb.{label}",
                    clock.progress,
                    state.rss_mb,
                    scaled,
                    bootstrap,
                    state_dir,
                )
    finally:
        if state_dir != workdir:
            shutil.rmtree(state_dir, ignore_errors=True)
    result["rss_mb"] = rss
    if errors:
        result.setdefault("errors", {}).update(errors)
    result["params"]["state_counts"] = {"restore": n_restore, "rss": [10_000 * scale, 1e6 * scale]}


def _rss_dir(workdir: Path) -> Path:
    """A fresh folder on /dev/shm when there is one, else ``workdir``."""
    shm = Path("/dev/shm")
    return Path(tempfile.mkdtemp(prefix="sagas-bench-rss-", dir=shm)) if shm.is_dir() else workdir


async def _call(
    errors: dict[str, str], key: str, progress: Progress, fn: Any, *args: Any
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
