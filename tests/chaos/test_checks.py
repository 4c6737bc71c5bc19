"""The final checks catch what they are for, on states built to break each rule.

The legal tables are exercised on real runs of the order saga through `decide` (the
`sagas.testing` harness): every committed state it passes through must be accepted,
and the same histories, tampered with, must be refused.
"""

from __future__ import annotations

import dataclasses
import json
import random
import signal
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sagas.chaos.checks.files import integrity_problems
from sagas.chaos.checks.processes import stopped_on_sigterm
from sagas.chaos.checks.sagas import (
    SAGA_LEGAL,
    compensation_problems,
    transition_problems,
)
from sagas.chaos.faults.base import ChaosContext
from sagas.chaos.final import SagaRecords, snapshot
from sagas.contracts.record import Envelope
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.machine import SagaInstance, SagaState, StepStatus, instance_to_dict
from sagas.testing import Harness, script, silent
from services.definitions.onboarding import ONBOARDING
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from services.messages.access import CloudAccessDenied, CloudAccessGranted
from services.messages.hr import Role
from services.messages.licensing import LicencesUnavailable
from services.messages.orders import Address, OrderLine, OrderPlaced
from services.messages.payments import PaymentCaptureFailed
from tests.unit.test_dev_processes import DIES_OF_TERM, EXITS_0_ON_TERM, ready, spec
from tests.unit.test_onboarding_saga import harness_for as onboarding_harness
from tests.unit.test_onboarding_saga import hired
from tests.unit.test_order_fulfilment import participants


def order() -> OrderPlaced:
    return OrderPlaced(
        order_id="o-1",
        customer_id="c-1",
        items=(OrderLine(sku="SKU-1", quantity=1, unit_price=Decimal("5.00")),),
        total=Decimal("5.00"),
        currency="EUR",
        shipping_address=Address(
            recipient="Ada", line1="Main St 1", city="Berlin", postal_code="10115", country="DE"
        ),
        placed_at=datetime(2030, 1, 1, tzinfo=UTC),
    )


def compensated_run() -> tuple[SagaInstance[Any], list[SagaInstance[Any]]]:
    """An order whose capture fails: three steps compensated; every state it went through."""
    failed = PaymentCaptureFailed(order_id="o-1", reason="expired")
    harness = Harness(ORDER_FULFILMENT, participants(CapturePayment=script(failed)))
    saga_id = harness.start(order())
    harness.run()
    seen = [d.instance for _, d in harness.decisions if d.instance is not None]
    return harness.instance(saga_id), seen


def records_of(states: list[SagaInstance[Any]]) -> SagaRecords:
    entry = SagaRecords("order_fulfilment")
    for offset, inst in enumerate(states):
        body = instance_to_dict(inst)
        entry.snapshots.append(snapshot(offset, _plain(body)))
        entry.body = body
    return entry


def _plain(body: dict[str, Any]) -> dict[str, Any]:
    """As the changelog holds it: JSON text, read back."""
    return dict(json.loads(json.dumps(body, default=str)))


def test_a_real_compensated_run_passes_every_saga_check() -> None:
    final, states = compensated_run()
    assert final.state is SagaState.COMPENSATED
    assert len(states) > 5
    assert transition_problems(final.saga_id, records_of(states)) == {}
    assert compensation_problems(ORDER_FULFILMENT, final) == []


def test_a_parallel_stage_undone_together_passes_the_compensation_check() -> None:
    short = LicencesUnavailable(employee_id="e-1", product="GITHUB")
    harness = onboarding_harness(AssignLicences=script(short))
    saga_id = harness.start(hired(role=Role.ENGINEER))
    harness.run()
    final = harness.instance(saga_id)
    assert final.state is SagaState.COMPENSATED
    assert compensation_problems(ONBOARDING, final) == []
    states = [d.instance for _, d in harness.decisions if d.instance is not None]
    assert transition_problems(saga_id, records_of(states)) == {}


def test_a_branch_compensated_unanswered_and_a_late_success_pass_the_checks() -> None:
    # grant_access times out unanswered during the compensation: it is undone in turn.
    short = LicencesUnavailable(employee_id="e-1", product="GITHUB")
    harness = onboarding_harness(AssignLicences=script(short), GrantCloudAccess=silent())
    saga_id = harness.start(hired(role=Role.ENGINEER))
    harness.run()
    final = harness.instance(saga_id)
    assert "grant_access" not in final.completed
    assert final.step("grant_access").status is StepStatus.COMPENSATED
    assert compensation_problems(ONBOARDING, final) == []
    states = [d.instance for _, d in harness.decisions if d.instance is not None]
    assert transition_problems(saga_id, records_of(states)) == {}
    # Then its success arrives after the end: recorded, nothing more to undo.
    late = granted_envelope(saga_id, harness.now)
    harness.send(saga_id, late)
    harness.run()
    assert compensation_problems(ONBOARDING, harness.instance(saga_id)) == []
    # Had it been compensated without being unanswered, that would be a violation.
    steps = tuple(dataclasses.replace(s, unanswered=False) for s in final.steps)
    blind = dataclasses.replace(final, steps=steps)
    assert any("never succeeded" in p for p in compensation_problems(ONBOARDING, blind))


def test_a_late_success_compensated_after_the_end_passes_the_checks() -> None:
    # Licences short while the access service answers a definitive-looking failure
    # first; its success comes after the saga ended COMPENSATED and is undone then.
    short = LicencesUnavailable(employee_id="e-1", product="GITHUB")
    denied = CloudAccessDenied(employee_id="e-1", reason="busy")
    harness = onboarding_harness(AssignLicences=script(short), GrantCloudAccess=script(denied))
    saga_id = harness.start(hired(role=Role.ENGINEER))
    harness.run()
    assert harness.state(saga_id) is SagaState.COMPENSATED
    assert harness.instance(saga_id).step("grant_access").status is StepStatus.FAILED
    harness.send(saga_id, granted_envelope(saga_id, harness.now))
    harness.run()
    final = harness.instance(saga_id)
    assert final.state is SagaState.COMPENSATED
    assert final.step("grant_access").status is StepStatus.COMPENSATED
    assert compensation_problems(ONBOARDING, final) == []
    states = [d.instance for _, d in harness.decisions if d.instance is not None]
    assert transition_problems(saga_id, records_of(states)) == {}


def granted_envelope(saga_id: str, at: datetime) -> Envelope:
    granted = CloudAccessGranted(employee_id="e-1", roles=("developer", "log-reader"))
    return Envelope(
        id=f"{saga_id}:grant_access:1:reply:late",
        type=granted.SCHEMA,
        source="/services/access",
        time=at,
        payload=granted,
        saga_id=saga_id,
    )


def test_a_completed_saga_that_runs_again_is_an_illegal_transition() -> None:
    final, states = compensated_run()
    back = dataclasses.replace(final, state=SagaState.RUNNING)
    found = transition_problems(final.saga_id, records_of([*states, back]))
    assert "illegal_transition" in found
    assert SagaState.RUNNING not in SAGA_LEGAL[SagaState.COMPENSATED]


def test_a_step_that_jumps_back_and_a_shrinking_history_are_caught() -> None:
    final, states = compensated_run()
    steps = tuple(
        dataclasses.replace(s, status=StepStatus.PENDING) if s.name == "reserve_stock" else s
        for s in final.steps
    )
    shorter = dataclasses.replace(final, steps=steps, history=final.history[:2])
    found = transition_problems(final.saga_id, records_of([*states, shorter]))
    assert any("reserve_stock" in p for p in found["illegal_transition"])
    assert found["history_rewritten"]


def test_compensations_in_the_wrong_order_or_of_a_step_that_never_succeeded() -> None:
    final, _ = compensated_run()
    # The first and the last compensation swapped: stages no longer undone in reverse.
    first, last = "compensate schedule_shipment", "compensate reserve_stock"
    history = tuple(
        dataclasses.replace(
            h, note=h.note.replace(first, "*").replace(last, first).replace("*", last)
        )
        for h in final.history
    )
    swapped = dataclasses.replace(final, history=history)
    assert any("stages in reverse" in p for p in compensation_problems(ORDER_FULFILMENT, swapped))
    # A step compensated although it never succeeded.
    never = dataclasses.replace(final, completed=("reserve_stock", "authorize_payment"))
    assert any("never succeeded" in p for p in compensation_problems(ORDER_FULFILMENT, never))


def test_a_damaged_sqlite_file_fails_the_integrity_check(tmp_path: Path) -> None:
    db = tmp_path / "store.sqlite3"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("CREATE INDEX t_v ON t (v)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, f"v{i}" * 50) for i in range(2000)])
    conn.close()
    assert integrity_problems(db) == []
    data = bytearray(db.read_bytes())
    page = 4096
    data[3 * page : 3 * page + 200] = b"\xff" * 200  # scribble over an index page
    db.write_bytes(bytes(data))
    assert integrity_problems(db) != []


async def test_unclean_stop_resumes_paused_processes_and_names_those_that_did_not_stop(
    tmp_path: Path,
) -> None:
    """The last check stops the system: a paused process is resumed first (it could not
    see its SIGTERM), one that answers SIGTERM with a non-zero status is reported."""
    with Supervisor(tmp_path / "logs") as supervisor:
        paused = supervisor.start(spec("paused", EXITS_0_ON_TERM))
        ready(paused)
        paused.popen.send_signal(signal.SIGSTOP)
        ready(supervisor.start(spec("unhandled", DIES_OF_TERM)))
        ctx = ChaosContext(
            system=LocalSystem(SystemLayout("127.0.0.1:9", tmp_path), supervisor),
            broker=None,  # type: ignore[arg-type]  # not used by this check
            bootstrap_servers="127.0.0.1:9",
            direct_servers="127.0.0.1:9",
            codec=None,  # type: ignore[arg-type]  # not used by this check
            prefix="",
            workdir=tmp_path,
            rng=random.Random(0),
        )
        found = await stopped_on_sigterm(ctx, [])

    assert found == {"unclean_stop": ["unhandled: exit -15 after SIGTERM"]}
    assert paused.exit_code() == 0
