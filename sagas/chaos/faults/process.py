"""Process faults: SIGKILL of engines, services and the broker; SIGSTOP past a timeout.

* ``engine_kill`` / ``service_kill``: SIGKILL one process, start it again at once.
* ``broker_restart``: SIGKILL the run's broker, start it again on the same data folder.
* ``zombie_engine``: SIGSTOP an engine past its session timeout, until the others own
  its partitions and make progress, then SIGCONT. Its late writes must be fenced: the
  loop logs ``was fenced`` when a newer owner refused them (counted in ``ctx.notes``).
* ``service_pause``: SIGSTOP a participant longer than a step timeout, then SIGCONT:
  the engine times the step out and resends; the participant answers when it wakes.

Every process signalled is one the runner started (by its supervisor's pid).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from sagas.chaos.faults.base import ChaosContext, Fault
from sagas.definition.steps import DEFAULT_TIMEOUT

PAUSE_PAST_TIMEOUT_S = DEFAULT_TIMEOUT.total_seconds() + 5
"""How long a paused service sleeps: past the default step timeout (30 s), well within
the retries the shipped sagas allow after a timeout (three sends)."""

BROKER_RESTART_TIMEOUT = timedelta(minutes=4)
"""A broker killed under load recovers its logs before it answers: give it time."""

FENCED_LINE = b"was fenced"
"""What the transactional loop logs when a newer owner fenced its producer."""


def _pick(ctx: ChaosContext, names: list[str]) -> str:
    alive = [n for n in names if ctx.system.supervisor.processes[n].alive()]
    return ctx.rng.choice(alive or names)


def _kill_and_restart(ctx: ChaosContext, name: str) -> None:
    supervisor = ctx.system.supervisor
    ctx.killed.add(name)
    supervisor.kill(name)
    supervisor.restart(name)


async def engine_kill(ctx: ChaosContext) -> None:
    """SIGKILL one engine process and start it again."""
    name = _pick(ctx, ctx.engines)
    ctx.log(f"engine_kill: SIGKILL {name}")
    _kill_and_restart(ctx, name)
    ctx.faults["engine_kill"] += 1


async def service_kill(ctx: ChaosContext) -> None:
    """SIGKILL one participant service and start it again."""
    name = _pick(ctx, ctx.services)
    ctx.log(f"service_kill: SIGKILL {name}")
    _kill_and_restart(ctx, name)
    web = ctx.system.web_ports.get(name)
    if web is not None:  # an entry service: placement waits for its HTTP API
        await ctx.system.wait_healthy(name, deadline_s=240)
    ctx.faults["service_kill"] += 1


async def broker_restart(ctx: ChaosContext) -> None:
    """SIGKILL the broker and start it again on the same (already formatted) data."""
    ctx.log("broker_restart: SIGKILL the broker")
    ctx.killed.add("broker")
    ctx.broker.kill()
    await asyncio.to_thread(ctx.broker.start, timeout=BROKER_RESTART_TIMEOUT, quiet=True)
    ctx.faults["broker_restart"] += 1


async def _members(ctx: ChaosContext, group: str) -> tuple[str, int]:
    """The engines' consumer group: its state and member count."""
    admin = AIOKafkaAdminClient(bootstrap_servers=ctx.direct_servers)
    try:
        await admin.start()
        response = (await admin.describe_consumer_groups([group]))[0]
        described = response.groups[0]
        return str(described[2]), len(described[5])
    except KafkaError:  # coordinator moving or loading: ask again at the next poll
        return "unknown", -1
    finally:
        await admin.close()


async def _wait_for(
    condition: Callable[[], Awaitable[bool]], deadline_s: float, poll_s: float = 0.5
) -> bool:
    """Whether ``condition`` became true within ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if await condition():
            return True
        await asyncio.sleep(poll_s)  # polling interval of a condition with a deadline
    return False


async def zombie_engine(ctx: ChaosContext) -> None:
    """SIGSTOP an engine until the others took its partitions over, then SIGCONT it."""
    name = _pick(ctx, ctx.engines)
    proc = ctx.system.supervisor.processes[name]
    group = f"{ctx.prefix}sagas-engine"
    others = sum(1 for n in ctx.engines if n != name)
    session = ctx.system.layout.session_timeout_s

    async def everyone_in() -> bool:
        state, members = await _members(ctx, group)
        return state == "Stable" and members == others + 1

    # Only a member that owns partitions can become a zombie.
    await _wait_for(everyone_in, deadline_s=session * 4 + 60)
    ctx.log(f"zombie_engine: SIGSTOP {name} past its {session:.0f}s session timeout")
    os.kill(proc.pid, signal.SIGSTOP)
    stopped = time.monotonic()
    try:

        async def taken_over() -> bool:
            if time.monotonic() - stopped < session:
                return False  # the group cannot have noticed yet
            state, members = await _members(ctx, group)
            return state == "Stable" and members == others

        moved = await _wait_for(taken_over, deadline_s=session * 4 + 60)
        ctx.notes.setdefault("zombie_takeovers", 0)
        ctx.notes["zombie_takeovers"] += int(moved)
        log_size = proc.log.stat().st_size
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    ctx.log(f"zombie_engine: SIGCONT {name}")

    def fenced_lines() -> int:
        with proc.log.open("rb") as log:
            log.seek(log_size)
            return log.read().count(FENCED_LINE)

    async def fenced() -> bool:
        return fenced_lines() > 0

    # Back in the group; a late write it attempted meanwhile is refused and logged.
    await _wait_for(everyone_in, deadline_s=session * 4 + 30)
    await _wait_for(fenced, deadline_s=5)
    ctx.notes.setdefault("zombie_fenced_writes_logged", 0)
    ctx.notes["zombie_fenced_writes_logged"] += fenced_lines()
    ctx.faults["zombie_engine"] += 1


async def service_pause(ctx: ChaosContext) -> None:
    """SIGSTOP a participant longer than a step timeout, then SIGCONT it."""
    name = _pick(ctx, ctx.services)
    proc = ctx.system.supervisor.processes[name]
    ctx.log(f"service_pause: SIGSTOP {name} for {PAUSE_PAST_TIMEOUT_S:.0f}s")
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(PAUSE_PAST_TIMEOUT_S)  # the fault itself: a long pause
    finally:
        os.kill(proc.pid, signal.SIGCONT)
    ctx.faults["service_pause"] += 1


FAULTS: dict[str, Fault] = {
    "engine_kill": engine_kill,
    "service_kill": service_kill,
    "broker_restart": broker_restart,
    "zombie_engine": zombie_engine,
    "service_pause": service_pause,
}
