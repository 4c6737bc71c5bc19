"""Store and clock faults, applied by an engine to itself through its control file.

* ``store_full``: the engine's SQLite file may not grow (``PRAGMA max_page_count``) for
  a few seconds; ``store_readonly``: its connection refuses every write
  (``PRAGMA query_only``). Either way the engine must keep what Kafka committed, wait,
  and carry on once the store takes writes again (`sagas.runtime.store_writer`).
* ``clock_forward``: the engine's clock jumps ahead by less than the shortest step
  timeout for a few seconds; ``clock_back``: it jumps back by anything from half a
  minute to an hour. Then the offset returns to 0. No timeout may fire before its due
  time, and each due timer fires once (`sagas.chaos.checks.timers`).

The engine reads ``<control_dir>/<engine>.json`` (``SAGAS_CHAOS_CONTROL``) every 0.2 s.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from sagas.chaos.control import ControlError, StoreMode, write_control
from sagas.chaos.faults.base import ChaosContext, Fault
from sagas.definition.steps import DEFAULT_TIMEOUT

HOLD_S = (2.0, 5.0)
"""How long a fault lasts, drawn from this range (seconds)."""

FORWARD_S = (5.0, DEFAULT_TIMEOUT.total_seconds() / 2)
"""Forward jumps stay well below the shortest step timeout of the shipped sagas (30 s),
so replies on their way still arrive in time."""

BACK_S = (30.0, 3600.0)
"""Backward jumps may be of any size."""

REFUSED_LINE = b"refuses writes for now"
"""What the engine logs (once per episode) when its store refused a write."""


def _control_file(ctx: ChaosContext, engine: str) -> Path:
    if ctx.control_dir is None:
        raise ControlError("no control folder: engines run without SAGAS_CHAOS_CONTROL")
    return ctx.control_dir / f"{engine}.json"


def _pick(ctx: ChaosContext) -> str:
    processes = ctx.system.supervisor.processes
    alive = [n for n in ctx.engines if n in processes and processes[n].alive()]
    return ctx.rng.choice(alive or ctx.engines)


def _log_size(ctx: ChaosContext, engine: str) -> int:
    proc = ctx.system.supervisor.processes.get(engine)
    return proc.log.stat().st_size if proc is not None and proc.log.exists() else 0


def _refused_since(ctx: ChaosContext, engine: str, offset: int) -> int:
    """Store-refusal episodes the engine logged after ``offset`` of its log."""
    proc = ctx.system.supervisor.processes.get(engine)
    if proc is None or not proc.log.exists():
        return 0
    with proc.log.open("rb") as log:
        log.seek(offset)
        return log.read().count(REFUSED_LINE)


async def _store_fault(ctx: ChaosContext, kind: str, mode: StoreMode) -> None:
    engine = _pick(ctx)
    path = _control_file(ctx, engine)
    hold = ctx.rng.uniform(*HOLD_S)
    ctx.log(f"{kind}: {engine}'s store {mode} for {hold:.1f}s")
    offset = _log_size(ctx, engine)
    write_control(path, store=mode)
    try:
        await asyncio.sleep(hold)  # the fault's duration
    finally:
        write_control(path, store="ok")
    # Counted for the report: whether the engine had a write to refuse meanwhile.
    refused = _refused_since(ctx, engine, offset)
    ctx.notes["store_refusals_logged"] = ctx.notes.get("store_refusals_logged", 0) + refused
    ctx.faults[kind] += 1


async def _clock_fault(ctx: ChaosContext, kind: str, offset_s: float) -> None:
    engine = _pick(ctx)
    path = _control_file(ctx, engine)
    hold = ctx.rng.uniform(*HOLD_S)
    ctx.log(f"{kind}: {engine}'s clock {offset_s:+.1f}s for {hold:.1f}s")
    write_control(path, clock_offset_s=offset_s)
    try:
        await asyncio.sleep(hold)  # the fault's duration
    finally:
        write_control(path, clock_offset_s=0.0)
    ctx.faults[kind] += 1


async def store_full(ctx: ChaosContext) -> None:
    """One engine's store may not grow for a few seconds."""
    await _store_fault(ctx, "store_full", "full")


async def store_readonly(ctx: ChaosContext) -> None:
    """One engine's store refuses every write for a few seconds."""
    await _store_fault(ctx, "store_readonly", "readonly")


async def clock_forward(ctx: ChaosContext) -> None:
    """One engine's clock runs ahead (less than a step timeout) for a few seconds."""
    await _clock_fault(ctx, "clock_forward", ctx.rng.uniform(*FORWARD_S))


async def clock_back(ctx: ChaosContext) -> None:
    """One engine's clock is set back (30 s to an hour) for a few seconds."""
    await _clock_fault(ctx, "clock_back", -ctx.rng.uniform(*BACK_S))


FAULTS: dict[str, Fault] = {
    "store_full": store_full,
    "store_readonly": store_readonly,
    "clock_forward": clock_forward,
    "clock_back": clock_back,
}
