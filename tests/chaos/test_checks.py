"""The final checks catch what they are for, on states built to break each rule.

The legal tables are exercised on real runs of the order saga through `decide` (the
`sagas.testing` harness): every committed state it passes through must be accepted,
and the same histories, tampered with, must be refused.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sagas.chaos.checks.files import integrity_problems
from sagas.chaos.checks.sagas import (
    SAGA_LEGAL,
    compensation_problems,
    transition_problems,
)
from sagas.chaos.final import SagaRecords, snapshot
from sagas.machine import SagaInstance, SagaState, StepStatus, instance_to_dict
from sagas.testing import Harness, script
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from services.messages.orders import Address, OrderLine, OrderPlaced
from services.messages.payments import PaymentCaptureFailed
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
    # Completion order swapped: the compensations sent no longer run in reverse of it.
    swapped = dataclasses.replace(
        final, completed=("authorize_payment", "reserve_stock", "schedule_shipment")
    )
    assert any("reverse completion" in p for p in compensation_problems(ORDER_FULFILMENT, swapped))
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
