"""Workloads for whole-system runs (demo, chaos, reliability tests).

A workload says how to drive one saga type through its services: the services and
their seed data, the HTTP route that starts business processes, a deterministic mix of
requests with the outcome each must reach, and how to audit the services' stores.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.audit import Violations, audit_onboarding, audit_orders, broken_invariants


@dataclass(frozen=True)
class Request:
    """One business process to start and how its saga must end."""

    body: dict[str, Any]
    key: str
    """The business key (order id, employee id) the audit uses."""
    saga_id: str
    expected: str
    """``COMPLETED`` or ``COMPENSATED``."""
    kind: str
    """Why it ends that way, for people (``ok``, ``declined``, ...)."""


@dataclass(frozen=True)
class Workload:
    saga: str
    services: tuple[str, ...]
    entry: str
    """The service whose HTTP route starts a process."""
    route: str
    seeds: Mapping[str, Mapping[str, Any]]
    request: Callable[[int], Request]
    audit: Callable[[Mapping[str, Path], Mapping[str, str]], Awaitable[Violations]]
    invariants: Callable[[Mapping[str, Path]], Awaitable[Violations]]
    checks: Mapping[str, str]
    """Audit violation kind -> the invariant it breaks, named as what must hold."""


def order_request(i: int) -> Request:
    """Order ``i``: 80% complete, 10% are declined by payments, 10% cannot be shipped."""
    kind = ("declined", "unshippable", *(["ok"] * 8))[i % 10]
    order_id = f"o{i}"
    body = {
        "order_id": order_id,
        "customer_id": "c-poor" if kind == "declined" else "c-ok",
        "items": [{"sku": "SKU-1", "quantity": 1 + i % 3}],
        "currency": "EUR",
        "shipping_address": {
            "recipient": "Ada Lovelace",
            "line1": "1 Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "ZZ" if kind == "unshippable" else "DE",
        },
    }
    expected = "COMPLETED" if kind == "ok" else "COMPENSATED"
    return Request(body, order_id, f"order:{order_id}", expected, kind)


SEEDS = Path(__file__).resolve().parent / "seeds"
"""The workloads' seed data, one JSON file per service (``SERVICE_SEED_FILE`` takes it as
it is: docker-compose.yml points each service at its file)."""


def seed_of(service: str) -> dict[str, Any]:
    """The seed data of ``service`` for the workloads (``seeds/<service>.json``)."""
    data: dict[str, Any] = json.loads((SEEDS / f"{service}.json").read_text(encoding="utf-8"))
    return data


ORDER_SEEDS: dict[str, dict[str, Any]] = {
    s: seed_of(s) for s in ("orders", "inventory", "payments", "shipping")
}
"""Customers ``c-ok`` (rich) and ``c-poor`` (declined), one carrier serving DE and FR
(``ZZ`` is unshippable), plenty of ``SKU-1``."""


async def _audit_orders(dbs: Mapping[str, Path], expected: Mapping[str, str]) -> Violations:
    return audit_orders(dbs, expected)


ORDERS = Workload(
    saga="order_fulfilment",
    services=("orders", "inventory", "payments", "shipping"),
    entry="orders",
    route="/orders",
    seeds=ORDER_SEEDS,
    request=order_request,
    audit=_audit_orders,
    invariants=broken_invariants,
    checks={
        "order_status": "orders_match_saga_outcomes",
        "effect_missing": "completed_orders_reserved_paid_shipped",
        "not_compensated": "cancelled_orders_fully_undone",
        "applied_twice": "no_command_applied_twice",
        "undone_without_compensation": "undo_only_when_the_saga_asked",
        "undone_but_not_applied": "undo_only_what_the_saga_applied",
        "applied_after_undo": "nothing_applied_after_its_undo",
    },
)


HIRE_KINDS: tuple[tuple[str, str | None], ...] = (
    ("ENGINEER", None),
    ("SALES", None),
    ("SUPPORT", None),
    ("MANAGER", None),  # no BI seat: licences short, mailbox and cloud access undone
    ("ENGINEER", "MBP-14-M4"),  # empty pool: the account is disabled
    ("ENGINEER", None),
    ("SALES", None),
    ("SUPPORT", None),
    ("ENGINEER", "X1-CARBON"),  # unknown model: an empty pool too
    ("SALES", None),
)


def hire_request(i: int) -> Request:
    """Hire ``i``: 70% are onboarded, 30% are undone (no BI seat, no laptop)."""
    role, model = HIRE_KINDS[i % len(HIRE_KINDS)]
    employee_id = f"e{i}"
    body: dict[str, Any] = {
        "employee_id": employee_id,
        # every fifth is another Ada Lovelace: the user names get digits
        "full_name": "Ada Lovelace" if i % 5 == 0 else f"Employee {i}",
        "role": role,
        "start_date": "2030-02-01",
    }
    if model is not None:
        body["laptop_model"] = model
    ok = role != "MANAGER" and model is None
    kind = "ok" if ok else ("no-laptop" if model else "no-licence-seat")
    return Request(
        body, employee_id, f"employee:{employee_id}", "COMPLETED" if ok else "COMPENSATED", kind
    )


HIRE_SEEDS: dict[str, dict[str, Any]] = {
    s: seed_of(s) for s in ("hr", "directory", "assets", "mail", "licensing", "access")
}
"""No BI seat at all (every manager's licences run short), no MBP-14-M4 in the pool."""

HIRES = Workload(
    saga="onboarding",
    services=("hr", "directory", "assets", "mail", "licensing", "access"),
    entry="hr",
    route="/hires",
    seeds=HIRE_SEEDS,
    request=hire_request,
    audit=audit_onboarding,
    invariants=broken_invariants,
    checks={
        "hire_status": "hires_match_saga_outcomes",
        "effect_missing": "onboarded_staff_fully_equipped",
        "not_compensated": "cancelled_hires_fully_undone",
        "applied_twice": "no_command_applied_twice",
        "undone_without_compensation": "undo_only_when_the_saga_asked",
        "undone_but_not_applied": "undo_only_what_the_saga_applied",
        "applied_after_undo": "nothing_applied_after_its_undo",
        "invariants": "laptops_seats_and_accounts_conserved",
    },
)


def workloads() -> dict[str, Workload]:
    """Every shipped workload by saga name."""
    return {ORDERS.saga: ORDERS, HIRES.saga: HIRES}
