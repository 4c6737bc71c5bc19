"""Checks on processes: none exited except those a fault killed (and restarted)."""

from __future__ import annotations

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


CHECKS: list[Check] = [no_unexpected_exit]
