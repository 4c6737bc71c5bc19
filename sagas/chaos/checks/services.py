"""Checks on the participants' own stores: effects agree with how each saga ended.

Under faults an outcome may legitimately differ from the no-fault expectation (a
paused service makes a step time out and the saga compensates), so the expected end
of each business process is the final state the engine committed, not the workload's
plan. The workload audits (`services.audit`) then check, from each service's SQLite
file: the entry service's record agrees with that end, every effect of a completed
saga is there exactly once, every effect of a compensated one is undone, nothing was
applied twice, nothing undone that the saga did not apply or did not ask to undo (a
compensation for a command that failed or never arrived is legitimate and undoes
nothing), nothing applied by a command after its compensation (the participants'
tombstones); and every service's own books balance (stock, money, seats, laptops,
accounts, holds within their time to live).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from sagas.chaos.context import RunContext
from sagas.chaos.faults.base import ChaosContext, Check
from sagas.machine import SagaInstance, SagaState
from services.audit import Violations
from services.workload import Workload

SETTLE_S = 60.0
"""How long the entry services get to follow the last end events (they do so async)."""

_STATUS_KINDS = ("order_status", "hire_status")


async def audit_settled(
    workload: Workload, dbs: Mapping[str, Path], expected: Mapping[str, str], deadline_s: float
) -> Violations:
    """The workload's audit, repeated until the entry service's statuses agree or time is up."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        found = await workload.audit(dbs, expected)
        if not any(k in found for k in _STATUS_KINDS) or loop.time() > end:
            return found
        await asyncio.sleep(0.5)  # polling interval: entry services follow end events


async def service_effects(
    ctx: ChaosContext, final: Sequence[SagaInstance[Any]]
) -> dict[str, list[str]]:
    """Each workload's audit against the committed end of its sagas, and the books."""
    if not isinstance(ctx, RunContext):
        return {}
    state = {i.saga_id: i.state for i in final}
    found: dict[str, list[str]] = {}
    ends = (SagaState.COMPLETED, SagaState.COMPENSATED)
    for name, requests in ctx.placed.items():
        workload = ctx.workloads[name]
        dbs = {s: ctx.system.layout.service_db(s) for s in workload.services}
        expected = {r.key: end.value for r in requests if (end := state.get(r.saga_id)) in ends}
        audit = await audit_settled(workload, dbs, expected, SETTLE_S)
        for kind, problems in audit.items():
            if kind != "invariants":  # the books are checked below, once per service
                found[f"{name}.{kind}"] = problems
        for service, broken in (await workload.invariants(dbs)).items():
            found[f"{service}.books"] = broken
    return found


CHECKS: list[Check] = [service_effects]
