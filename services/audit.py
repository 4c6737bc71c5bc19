"""Check saga outcomes against the participants' own records (not the engine's).

Used by `sagas demo`, the chaos runner and the reliability tests: what the services
did must agree with how each saga ended, nothing may be applied twice, nothing may be
compensated that did not succeed, and every service's books must balance.
`audit_orders` checks order fulfilment, `audit_onboarding` employee onboarding.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from services import (
    access,
    assets,
    directory,
    hr,
    inventory,
    licensing,
    mail,
    orders,
    payments,
    shipping,
)
from services.definitions.onboarding import CLOUD_ROLES, PRODUCTS
from services.messages.hr import Role

Violations = dict[str, list[str]]

# Per service: the table of side effects per order, and its compensation command type.
_EFFECTS = {
    "inventory": ("reservations", "ACTIVE", "RELEASED", "inventory.ReleaseStock"),
    "payments": ("authorizations", "CAPTURED", "VOIDED", "payments.VoidPayment"),
    "shipping": ("shipments", "SCHEDULED", "CANCELLED", "shipping.CancelShipment"),
}
_INVARIANTS = {
    "orders": orders.invariants,
    "inventory": inventory.invariants,
    "payments": payments.invariants,
    "shipping": shipping.invariants,
    "hr": hr.invariants,
    "directory": directory.invariants,
    "assets": assets.invariants,
    "mail": mail.invariants,
    "licensing": licensing.invariants,
    "access": access.invariants,
}


def _rows(db: Path, query: str) -> list[tuple[object, ...]]:
    uri = f"file:{db}?mode=ro"
    with sqlite3.connect(uri, uri=True) as conn:
        return list(conn.execute(query))


def _effects(db: Path, table: str) -> dict[str, list[str]]:
    by_order: dict[str, list[str]] = defaultdict(list)
    # ``table`` comes from _EFFECTS, never from input.
    for order_id, status in _rows(db, f"SELECT order_id, status FROM {table}"):
        by_order[str(order_id)].append(str(status))
    return by_order


def _compensated(db: Path, command_type: str) -> set[str]:
    """Order ids whose saga sent ``command_type`` and the service processed it."""
    rows = _rows(db, "SELECT message_id, message_type FROM processed")
    return {str(mid).split(":")[1] for mid, mtype in rows if mtype == command_type}


def audit_orders(dbs: Mapping[str, Path], expected: Mapping[str, str]) -> Violations:
    """Compare the services' stores with the expected end of each order's saga.

    Args:
        dbs: SQLite file per service name (orders, inventory, payments, shipping).
        expected: order id -> ``COMPLETED`` or ``COMPENSATED``.
    """
    found: Violations = defaultdict(list)
    status = {
        str(o): str(s) for o, s in _rows(dbs["orders"], "SELECT order_id, status FROM orders")
    }
    for order_id, outcome in expected.items():
        want = "FULFILLED" if outcome == "COMPLETED" else "CANCELLED"
        if status.get(order_id) != want:
            found["order_status"].append(f"{order_id}: {status.get(order_id)} != {want}")
    for service, (table, done, undone, compensation) in _EFFECTS.items():
        effects = _effects(dbs[service], table)
        compensated = _compensated(dbs[service], compensation)
        for order_id, outcome in expected.items():
            seen = effects.get(order_id, [])
            if len(seen) > 1:
                found["applied_twice"].append(f"{service}: {order_id} has {seen}")
            if outcome == "COMPLETED" and seen != [done]:
                found["effect_missing"].append(f"{service}: {order_id} completed with {seen}")
            if outcome == "COMPENSATED" and done in seen:
                found["not_compensated"].append(f"{service}: {order_id} still {done}")
            if not seen and order_id in compensated:
                found["compensated_without_success"].append(f"{service}: {order_id}")
            if seen == [undone] and order_id not in compensated:
                found["undone_without_compensation"].append(f"{service}: {order_id}")
    return dict(found)


async def broken_invariants(dbs: Mapping[str, Path]) -> Violations:
    """The own invariants (stock, money, seats...) of each service named in ``dbs``."""
    found: Violations = {}
    for service, check in _INVARIANTS.items():
        if service not in dbs:
            continue
        async with aiosqlite.connect(dbs[service]) as db:
            broken = await check(db)
        if broken:
            found[service] = broken
    return found


@dataclass(frozen=True)
class _Effect:
    """Where a service records what it did for an employee, and how it is undone."""

    query: str  # -> (employee_id, item, status); item "" for one effect per employee
    done: str
    undone: str
    compensation: str


_ONBOARDING_EFFECTS = {
    "directory": _Effect(
        "SELECT employee_id, '', status FROM accounts",
        "ACTIVE",
        "DISABLED",
        "directory.DisableAccount",
    ),
    "assets": _Effect(
        "SELECT employee_id, '', status FROM assignments",
        "ASSIGNED",
        "RECLAIMED",
        "assets.ReclaimLaptop",
    ),
    "mail": _Effect(
        "SELECT employee_id, '', status FROM mailboxes", "ACTIVE", "DELETED", "mail.DeleteMailbox"
    ),
    "licensing": _Effect(
        "SELECT employee_id, product, status FROM licences",
        "ASSIGNED",
        "UNASSIGNED",
        "licensing.UnassignLicences",
    ),
    "access": _Effect(
        "SELECT employee_id, role, status FROM grants",
        "GRANTED",
        "REVOKED",
        "access.RevokeCloudAccess",
    ),
}


def _wanted_items(service: str, role: Role | None) -> set[str] | None:
    """The items a completed onboarding leaves (``None``: exactly one, unnamed)."""
    if service == "licensing":
        return set(PRODUCTS[role]) if role else set()
    if service == "access":
        return set(CLOUD_ROLES[role]) if role else set()
    return None


async def audit_onboarding(dbs: Mapping[str, Path], expected: Mapping[str, str]) -> Violations:
    """Compare the six onboarding services' stores with how each onboarding ended.

    Args:
        dbs: SQLite file per service name (hr, directory, assets, mail, licensing, access).
        expected: employee id -> ``COMPLETED`` or ``COMPENSATED``.

    Returns:
        Broken rules by kind: ``hire_status``, ``applied_twice``, ``effect_missing``,
        ``not_compensated``, ``compensated_without_success``,
        ``undone_without_compensation``, and ``invariants`` (each service's own).
    """
    found: Violations = defaultdict(list)
    hires = _rows(dbs["hr"], "SELECT employee_id, status, role FROM hires")
    status = {str(e): str(s) for e, s, _ in hires}
    roles = {str(e): Role(str(r)) for e, _, r in hires}
    for employee_id, outcome in expected.items():
        want = "ONBOARDED" if outcome == "COMPLETED" else "CANCELLED"
        if status.get(employee_id) != want:
            found["hire_status"].append(f"{employee_id}: {status.get(employee_id)} != {want}")
    for service, effect in _ONBOARDING_EFFECTS.items():
        by_employee: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for employee, item, state in _rows(dbs[service], effect.query):
            by_employee[str(employee)].append((str(item), str(state)))
        compensated = _compensated(dbs[service], effect.compensation)
        for employee_id, outcome in expected.items():
            seen = by_employee.get(employee_id, [])
            wanted = _wanted_items(service, roles.get(employee_id))
            for kind, problem in _check_effects(effect, seen, outcome, wanted):
                found[kind].append(f"{service}: {employee_id} {problem}")
            if not seen and employee_id in compensated:
                found["compensated_without_success"].append(f"{service}: {employee_id}")
            undone = any(s == effect.undone for _, s in seen)
            if undone and employee_id not in compensated:
                found["undone_without_compensation"].append(f"{service}: {employee_id}")
    for service, broken in (await broken_invariants(dbs)).items():
        found["invariants"].extend(f"{service}: {b}" for b in broken)
    return dict(found)


def _check_effects(
    effect: _Effect, seen: list[tuple[str, str]], outcome: str, wanted: set[str] | None
) -> list[tuple[str, str]]:
    items = [item for item, _ in seen]
    done = sorted(item for item, state in seen if state == effect.done)
    problems: list[tuple[str, str]] = []
    if len(items) != len(set(items)):
        problems.append(("applied_twice", f"has {sorted(seen)}"))
    if outcome == "COMPENSATED" and done:
        problems.append(("not_compensated", f"still {effect.done}: {done}"))
    if outcome == "COMPLETED":
        ok = (
            (len(seen) == 1 and done == [""])
            if wanted is None
            else set(items) == set(done) == wanted
        )
        if not ok:
            problems.append(("effect_missing", f"completed with {sorted(seen)}"))
    return problems
