"""Check saga outcomes against the participants' own records (not the engine's).

Used by `sagas demo`, the chaos runner and the reliability tests: what the services
did must agree with how each saga ended, nothing may be applied twice, nothing stays
applied for a compensated saga, nothing is undone that was not applied (by a command of
its own saga) or that the saga did not ask to undo, no command refused after its
compensation (a tombstone) applied anything, and every service's books must balance.

A compensation may legitimately reach a service for a command that failed or never
arrived (the saga compensates a step that may have been applied): that is no
violation. Holds that expired (inventory, assets: released by the service's sweep) are
undone without a compensation, and are checked by the services' invariants instead.

Which command made a row is known from its id: every service derives the ids of what
a command makes from the command's id (`sagas.participant.definition.derived_id`).
`audit_orders` checks order fulfilment, `audit_onboarding` employee onboarding.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiosqlite

from sagas.participant import derived_id
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


@dataclass(frozen=True)
class _Effect:
    """Where a service records what it did per saga, and how it is undone.

    ``query`` returns ``(key, item, status, row id)``: the order or employee, the item
    (``""`` for one effect per saga), the status, and the row's id, which the forward
    command made with ``new_id(prefix(item))``.
    """

    query: str
    done: str
    undone: str
    compensation: str
    forward: str
    prefix: Callable[[str], str]
    expired: str | None = None  # the ids of expired holds, for services with a TTL


_EFFECTS = {
    "inventory": _Effect(
        "SELECT order_id, '', status, reservation_id FROM reservations",
        "ACTIVE",
        "RELEASED",
        "inventory.ReleaseStock",
        "inventory.ReserveStock",
        lambda _: "res",
        "SELECT reservation_id FROM holds WHERE expired_at IS NOT NULL",
    ),
    "payments": _Effect(
        "SELECT order_id, '', status, authorization_id FROM authorizations",
        "CAPTURED",
        "VOIDED",
        "payments.VoidPayment",
        "payments.AuthorizePayment",
        lambda _: "auth",
    ),
    "shipping": _Effect(
        "SELECT order_id, '', status, shipment_id FROM shipments",
        "SCHEDULED",
        "CANCELLED",
        "shipping.CancelShipment",
        "shipping.ScheduleShipment",
        lambda _: "ship",
    ),
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


def _key(message_id: object) -> str:
    """The order or employee id in a command id (``order:o-1:reserve_stock:1`` -> o-1)."""
    return str(message_id).split(":")[1]


def _compensated(db: Path, command_type: str) -> set[str]:
    """Keys whose saga sent ``command_type`` and the service processed it."""
    rows = _rows(db, "SELECT message_id, message_type FROM processed")
    return {_key(mid) for mid, mtype in rows if mtype == command_type}


@dataclass
class _Rows:
    """One service's effect rows and what its processed commands and tombstones made."""

    by_key: dict[str, list[tuple[str, str, str]]]  # key -> (item, status, row id)
    made: dict[str, set[str]]  # key -> ids its saga's forward commands made (or would)
    refused: set[str]  # ids the tombstoned commands would have made
    expired: set[str]

    @staticmethod
    def read(db: Path, effect: _Effect) -> _Rows:
        by_key: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
        for key, item, status, row_id in _rows(db, effect.query):
            by_key[str(key)].append((str(item), str(status), str(row_id)))
        items = {item for rows in by_key.values() for item, _, _ in rows}
        forward = [
            str(mid)
            for mid, mtype in _rows(db, "SELECT message_id, message_type FROM processed")
            if mtype == effect.forward
        ]
        made: dict[str, set[str]] = defaultdict(set)
        for mid in forward:
            made[_key(mid)] |= {derived_id(mid, effect.prefix(i)) for i in items}
        tombs = [str(t) for (t,) in _rows(db, "SELECT command_id FROM tombstones")]
        refused = {derived_id(t, effect.prefix(i)) for t in tombs for i in items}
        expired = {str(r) for (r,) in _rows(db, effect.expired)} if effect.expired else set()
        return _Rows(by_key, made, refused, expired)


def _check_undo(
    service: str, effect: _Effect, rows: _Rows, key: str, compensated: set[str]
) -> list[tuple[str, str]]:
    """Undo rules for one key: nothing undone that its saga did not apply or did not
    ask to undo (expired holds aside), and nothing applied by a refused command."""
    problems: list[tuple[str, str]] = []
    for item, status, row_id in rows.by_key.get(key, []):
        where = f"{service}: {key} {row_id}" + (f" ({item})" if item else "")
        if row_id in rows.refused:
            problems.append(("applied_after_undo", where))
        if status != effect.undone or row_id in rows.expired:
            continue
        if key not in compensated:
            problems.append(("undone_without_compensation", where))
        if row_id not in rows.made.get(key, set()):
            problems.append(("undone_but_not_applied", where))
    return problems


def audit_orders(dbs: Mapping[str, Path], expected: Mapping[str, str]) -> Violations:
    """Compare the services' stores with the expected end of each order's saga.

    Args:
        dbs: SQLite file per service name (orders, inventory, payments, shipping).
        expected: order id -> ``COMPLETED`` or ``COMPENSATED``.

    Returns:
        Broken rules by kind: ``order_status``, ``applied_twice``, ``effect_missing``,
        ``not_compensated``, ``undone_without_compensation``, ``undone_but_not_applied``,
        ``applied_after_undo``.
    """
    found: Violations = defaultdict(list)
    status = {
        str(o): str(s) for o, s in _rows(dbs["orders"], "SELECT order_id, status FROM orders")
    }
    for order_id, outcome in expected.items():
        want = "FULFILLED" if outcome == "COMPLETED" else "CANCELLED"
        if status.get(order_id) != want:
            found["order_status"].append(f"{order_id}: {status.get(order_id)} != {want}")
    for service, effect in _EFFECTS.items():
        rows = _Rows.read(dbs[service], effect)
        compensated = _compensated(dbs[service], effect.compensation)
        for order_id, outcome in expected.items():
            seen = [s for _, s, _ in rows.by_key.get(order_id, [])]
            if len(seen) > 1:
                found["applied_twice"].append(f"{service}: {order_id} has {seen}")
            if outcome == "COMPLETED" and seen != [effect.done]:
                found["effect_missing"].append(f"{service}: {order_id} completed with {seen}")
            if outcome == "COMPENSATED" and effect.done in seen:
                found["not_compensated"].append(f"{service}: {order_id} still {effect.done}")
            for kind, problem in _check_undo(service, effect, rows, order_id, compensated):
                found[kind].append(problem)
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


_ONBOARDING_EFFECTS = {
    "directory": _Effect(
        "SELECT employee_id, '', status, account_id FROM accounts",
        "ACTIVE",
        "DISABLED",
        "directory.DisableAccount",
        "directory.CreateAccount",
        lambda _: "acc",
    ),
    "assets": _Effect(
        "SELECT employee_id, '', status, assignment_id FROM assignments",
        "ASSIGNED",
        "RECLAIMED",
        "assets.ReclaimLaptop",
        "assets.ProvisionLaptop",
        lambda _: "asg",
        "SELECT assignment_id FROM holds WHERE expired_at IS NOT NULL",
    ),
    "mail": _Effect(
        "SELECT employee_id, '', status, mailbox_id FROM mailboxes",
        "ACTIVE",
        "DELETED",
        "mail.DeleteMailbox",
        "mail.CreateMailbox",
        lambda _: "mbx",
    ),
    "licensing": _Effect(
        "SELECT employee_id, product, status, licence_id FROM licences",
        "ASSIGNED",
        "UNASSIGNED",
        "licensing.UnassignLicences",
        "licensing.AssignLicences",
        lambda product: f"lic-{product}",
    ),
    "access": _Effect(
        "SELECT employee_id, role, status, grant_id FROM grants",
        "GRANTED",
        "REVOKED",
        "access.RevokeCloudAccess",
        "access.GrantCloudAccess",
        lambda role: f"grant-{role}",
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
        ``not_compensated``, ``undone_without_compensation``, ``undone_but_not_applied``,
        ``applied_after_undo``, and ``invariants`` (each service's own).
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
        rows = _Rows.read(dbs[service], effect)
        compensated = _compensated(dbs[service], effect.compensation)
        for employee_id, outcome in expected.items():
            seen = [(item, s) for item, s, _ in rows.by_key.get(employee_id, [])]
            wanted = _wanted_items(service, roles.get(employee_id))
            for kind, problem in _check_effects(effect, seen, outcome, wanted):
                found[kind].append(f"{service}: {employee_id} {problem}")
            for kind, problem in _check_undo(service, effect, rows, employee_id, compensated):
                found[kind].append(problem)
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
