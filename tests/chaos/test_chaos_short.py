"""The short chaos scenario (``make test``): both sagas under process faults, all checks.

The runner starts its own broker, two engines and the ten services, places orders and
hires at a steady rate, kills and pauses processes on a schedule drawn from the seed,
waits until every saga ended and runs every registered check. Then the same checks
are fed a deliberately broken system (a saga put back to RUNNING, a side effect
applied twice) to show that they catch it.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest

from sagas.chaos import report
from sagas.chaos.checks.sagas import sagas_ended
from sagas.chaos.checks.services import service_effects
from sagas.chaos.final import final_instances
from sagas.chaos.runner import ChaosPlan, run_chaos
from sagas.machine import SagaState
from services.definitions import all_definitions

pytestmark = [pytest.mark.chaos, pytest.mark.kafka, pytest.mark.timeout(1200)]

SEED = 20261129
FAULTS = {"engine_kill": 2, "service_kill": 1, "zombie_engine": 1}


async def test_short_scenario_has_no_violation_and_the_checks_catch_a_broken_system(
    tmp_path: Path,
) -> None:
    plan = ChaosPlan(sagas=100, seed=SEED, counts=dict(FAULTS), workdir=tmp_path, rate=4.0)
    lines: list[str] = []
    outcome = await run_chaos(plan, show=lambda ctx, status: None, log=lines.append)
    result = report.build(plan, outcome)
    print(result)

    assert result["violations"] == {}, result["examples"]
    assert result["sagas"] == plan.sagas
    assert result["faults"] == FAULTS
    assert set(result["recovery_s"]) == set(FAULTS)
    assert sum(result["outcomes"].values()) >= plan.sagas
    assert result["replay"].startswith(f"sagas chaos --seed {SEED} ")

    # The same checks on a broken system: a saga not terminal ...
    ctx = outcome.ctx
    final = final_instances(ctx.records, all_definitions())
    victim = next(i for i in final if i.saga_id in ctx.placed_ids())
    broken = [dataclasses.replace(victim, state=SagaState.RUNNING)] + [
        i for i in final if i is not victim
    ]
    assert [victim.saga_id in m for m in (await sagas_ended(ctx, broken))["saga_stuck"]] == [True]

    # ... and a side effect applied twice in a service's own store.
    completed = next(
        i.saga_id.split(":", 1)[1]
        for i in final
        if i.saga == "order_fulfilment" and i.state is SagaState.COMPLETED
    )
    with sqlite3.connect(ctx.system.layout.service_db("inventory")) as conn:
        conn.execute(
            "INSERT INTO reservations VALUES ('r-again', ?, 'ACTIVE', '2030-01-01')", (completed,)
        )
    conn.close()
    found = await service_effects(ctx, final)
    assert any(completed in m for m in found["order_fulfilment.applied_twice"])
