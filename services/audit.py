"""Check saga outcomes against the participants' own records (not the engine's).

Used by `sagas demo`, the chaos runner and the reliability tests: what the services
did must agree with how each saga ended, nothing may be applied twice, nothing may be
compensated that did not succeed, and every service's books must balance.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import aiosqlite

from services import inventory, orders, payments, shipping

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
    """Each service's own invariants (stock, money, capacity, orders)."""
    found: Violations = {}
    for service, check in _INVARIANTS.items():
        async with aiosqlite.connect(dbs[service]) as db:
            broken = await check(db)
        if broken:
            found[service] = broken
    return found
