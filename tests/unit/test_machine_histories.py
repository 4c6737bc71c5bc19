"""Golden histories: recorded inputs replayed through `decide` must give the recorded
decisions and final instance. A change of behaviour shows up as a diff here.

To record them again after an intended change::

    SAGAS_REGEN_HISTORIES=1 .venv/bin/pytest tests/unit/test_machine_histories.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from sagas import Abort, Pause, Resume, Retry, RetryNow, Saga, SkipStep, TimerFired, Unpause, decide
from sagas.contracts.record import Envelope, Record
from sagas.machine import (
    Decision,
    Input,
    OperatorAction,
    SagaInstance,
    TimerKind,
    envelope_from_dict,
    envelope_to_dict,
    instance_to_dict,
    record_from_dict,
    record_to_dict,
)
from sagas.machine.codec import JSON
from tests.unit.saga_fixtures import (
    ALL_TYPES,
    T0,
    CustomerNotified,
    GatewayBusy,
    OrderData,
    ParcelDelivered,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentVoided,
    ReleaseRefused,
    ShipmentScheduled,
    StockReleased,
    StockReserved,
    envelope,
    order_saga,
    parallel_saga,
    placed,
)

HERE = Path(__file__).resolve().parents[1] / "histories"
SAGAS: dict[str, Saga[OrderData]] = {"order": order_saga(), "parallel": parallel_saga()}
ACTIONS: dict[str, type[OperatorAction]] = {
    cls.__name__: cls for cls in (Abort, Pause, Resume, Retry, RetryNow, SkipStep, Unpause)
}

# A script item: a record to deliver, an operator action, ("timer", kind, step) to fire
# the matching pending timer, or ("wait", seconds).
Script = list[Any]


def happy() -> tuple[str, Script]:
    return "order", [
        StockReserved(order_id="o-1", reservation_id="r-1"),
        GatewayBusy(order_id="o-1"),
        ("timer", TimerKind.RETRY, "authorize_payment"),
        PaymentAuthorized(order_id="o-1", authorization_id="a-1"),
        ShipmentScheduled(order_id="o-1"),
        ShipmentScheduled(order_id="o-1"),
        CustomerNotified(order_id="o-1"),
    ]


def compensated() -> tuple[str, Script]:
    return "order", [
        StockReserved(order_id="o-1", reservation_id="r-1"),
        ("timer", TimerKind.TIMEOUT, "authorize_payment"),
        ("timer", TimerKind.RETRY, "authorize_payment"),
        PaymentDeclined(order_id="o-1"),
        ReleaseRefused(reservation_id="r-1"),
        ("timer", TimerKind.COMPENSATION_RETRY, "reserve_stock"),
        StockReleased(reservation_id="r-1"),
        PaymentVoided(authorization_id="late"),
    ]


def operated() -> tuple[str, Script]:
    return "parallel", [
        ParcelDelivered(order_id="o-1"),
        Pause(id="op-1", actor="alice", reason="investigating"),
        StockReserved(order_id="o-1", reservation_id="r-1"),
        ("wait", 120),
        Unpause(id="op-2", actor="alice"),
        Abort(id="op-3", actor="alice", reason="customer cancelled"),
        # The payment timed out unanswered: it may have been authorized, so it is voided
        # too, in the same round as the reservation (the two branches are independent).
        PaymentVoided(authorization_id="?"),
        ReleaseRefused(reservation_id="r-1"),
        ("timer", TimerKind.COMPENSATION_RETRY, "reserve_stock"),
        ReleaseRefused(reservation_id="r-1"),
        ("timer", TimerKind.COMPENSATION_RETRY, "reserve_stock"),
        ReleaseRefused(reservation_id="r-1"),
        Resume(id="op-4", actor="bob"),
        SkipStep(id="op-5", actor="bob", step="reserve_stock", reason="released by hand"),
    ]


SCENARIOS: dict[str, Callable[[], tuple[str, Script]]] = {
    "order_happy_with_retry": happy,
    "order_compensated_after_timeouts": compensated,
    "parallel_operated": operated,
}


def encode_input(item: Input) -> dict[str, JSON]:
    if isinstance(item, Envelope):
        return {"envelope": envelope_to_dict(item)}
    if isinstance(item, TimerFired):
        fields: dict[str, JSON] = {
            "kind": item.kind.value,
            "step": item.step,
            "attempt": item.attempt,
            "due": item.due.isoformat(),
        }
        return {"timer": fields}
    fields = {k: v for k, v in vars(item).items() if k != "result"}
    result = getattr(item, "result", None)
    fields["result"] = record_to_dict(result) if isinstance(result, Record) else None
    return {"operator": {"action": type(item).__name__, **fields}}


def decode_input(saga: Saga[Any], data: dict[str, Any]) -> Input:
    if "envelope" in data:
        return envelope_from_dict(saga, data["envelope"], ALL_TYPES)
    if "timer" in data:
        t = data["timer"]
        due = datetime.fromisoformat(t["due"])
        return TimerFired(kind=TimerKind(t["kind"]), step=t["step"], attempt=t["attempt"], due=due)
    op = dict(data["operator"])
    cls = ACTIONS[op.pop("action")]
    result = op.pop("result")
    if result is not None:
        op["result"] = record_from_dict(saga, result, ALL_TYPES)
    return cls(**op)


def summary(decision: Decision[Any]) -> dict[str, JSON]:
    return {
        "ignored": decision.ignored,
        "note": decision.note,
        "outgoing": [[m.kind.value, m.topic, m.key, m.id, m.type] for m in decision.outgoing],
        "timers": [[t.kind.value, t.step, t.attempt, t.due.isoformat()] for t in decision.timers],
    }


def record(name: str) -> dict[str, JSON]:
    """Run a scenario, building its inputs against the live instance."""
    saga_name, script = SCENARIOS[name]()
    saga = SAGAS[saga_name]
    now = T0
    inputs: list[JSON] = []
    decisions: list[JSON] = []
    instance_: SagaInstance[Any] | None = None
    for n, item in enumerate([placed(), *script]):
        if isinstance(item, tuple) and item[0] == "wait":
            now += timedelta(seconds=item[1])
            continue
        if isinstance(item, tuple):
            assert instance_ is not None
            timer = next(t for t in instance_.timers if t.kind is item[1] and t.step == item[2])
            now = max(now, timer.due)
            item = TimerFired(
                kind=timer.kind, step=timer.step, attempt=timer.attempt, due=timer.due
            )
        elif isinstance(item, Record):
            item = envelope(item, f"m{n}", at=now)
        inputs.append({"at": now.isoformat(), **encode_input(item)})
        decision = decide(saga, instance_, item, now)
        instance_ = decision.instance
        decisions.append(summary(decision))
        now += timedelta(seconds=1)
    assert instance_ is not None
    return {
        "saga": saga_name,
        "inputs": inputs,
        "decisions": decisions,
        "final": instance_to_dict(instance_),
    }


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_golden_history(name: str) -> None:
    path = HERE / f"{name}.json"
    if os.environ.get("SAGAS_REGEN_HISTORIES"):
        path.write_text(json.dumps(record(name), indent=1, sort_keys=True) + "\n")
    golden = json.loads(path.read_text())
    saga = SAGAS[golden["saga"]]
    instance: SagaInstance[Any] | None = None
    for item, expected in zip(golden["inputs"], golden["decisions"], strict=True):
        now = datetime.fromisoformat(item["at"])
        decision = decide(saga, instance, decode_input(saga, item), now)
        assert summary(decision) == expected, f"drift at input {item}"
        instance = decision.instance
    assert instance is not None
    assert json.loads(json.dumps(instance_to_dict(instance))) == golden["final"]
