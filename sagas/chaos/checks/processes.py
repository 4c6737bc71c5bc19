"""Checks on processes: none exited except those a fault killed (and restarted), and
every one stops cleanly on SIGTERM at the end of the run.

``stopped_on_sigterm`` stops the system, so it runs after every check that needs the
processes (the registry runs this module's checks after the sagas', services', files'
and dead letters' ones; the timers' checks read the histories already collected).
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from typing import Any

from sagas.chaos.context import RunContext
from sagas.chaos.faults.base import ChaosContext, Check
from sagas.machine import SagaInstance


async def no_unexpected_exit(
    ctx: ChaosContext, final: Sequence[SagaInstance[Any]]
) -> dict[str, list[str]]:
    """The processes the runner saw die on their own, and those dead right now."""
    found = (
        [f"{name}: {why}" for name, whys in ctx.exits.items() for why in whys]
        if isinstance(ctx, RunContext)
        else []
    )
    for proc in ctx.system.supervisor:
        if not proc.alive():
            found.append(f"{proc.spec.name}: not running (exit {proc.exit_code()})")
    return {"unexpected_exit": found} if found else {}


async def stopped_on_sigterm(
    ctx: ChaosContext, final: Sequence[SagaInstance[Any]]
) -> dict[str, list[str]]:
    """Stop every process (SIGTERM, then SIGKILL after the grace): those that needed
    the SIGKILL, or answered SIGTERM with a non-zero status, did not drain and commit
    what they had in flight as they must."""
    supervisor = ctx.system.supervisor
    for proc in supervisor:  # a paused process could not see its SIGTERM
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGCONT)
    await asyncio.to_thread(supervisor.stop_all)
    found = [f"{name}: {why}" for name, why in supervisor.unclean_stops().items()]
    return {"unclean_stop": found} if found else {}


CHECKS: list[Check] = [no_unexpected_exit, stopped_on_sigterm]
