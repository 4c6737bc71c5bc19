"""The licensing service: a number of seats per software product, and which role may
hold which product.

Rules:
- ``AssignLicences`` assigns every product asked for, or none: a product the role is
  not entitled to is refused (``CommandFailed``, not retryable); the first product
  without a free seat (or unknown) gives ``LicencesUnavailable`` and nothing is
  assigned. Products the employee already holds are not assigned twice.
- ``UnassignLicences`` frees the seats of the licences assigned by the commands it
  compensates (its ``compensates`` header: a product the employee held before the saga
  is kept); without the header, the employee's seats of the products named. Products
  the employee does not hold are passed over; it always replies ``LicencesUnassigned``.

Invariants (`invariants`): per product, free + used = seats (seats are conserved), used
is the number of assigned licences, and nobody holds a product twice.

Run it with ``python -m services.licensing``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant, Rejected
from services.messages.licensing import (
    AssignLicences,
    LicencesAssigned,
    LicencesUnassigned,
    LicencesUnavailable,
    UnassignLicences,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    product TEXT PRIMARY KEY,
    seats   INTEGER NOT NULL CHECK (seats >= 0),
    used    INTEGER NOT NULL CHECK (used >= 0)
);
CREATE TABLE IF NOT EXISTS entitlements (
    role    TEXT NOT NULL,
    product TEXT NOT NULL REFERENCES products,
    PRIMARY KEY (role, product)
);
CREATE TABLE IF NOT EXISTS licences (
    licence_id    TEXT PRIMARY KEY,
    employee_id   TEXT NOT NULL,
    product       TEXT NOT NULL REFERENCES products,
    status        TEXT NOT NULL CHECK (status IN ('ASSIGNED', 'UNASSIGNED')),
    assigned_at   TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS licences_by_employee ON licences (employee_id);
"""

DEFAULT_SEED: dict[str, Any] = {
    "seats": {"IDE": 50, "GITHUB": 50, "CRM": 40, "BI": 3},
    "roles": {
        "ENGINEER": ["IDE", "GITHUB"],
        "SALES": ["CRM"],
        "SUPPORT": [],
        "MANAGER": ["CRM", "BI"],
    },
}
"""The deterministic default: seats per product (``BI`` is short) and products per role."""


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"seats": {product: n}, "roles": {role: [product]}}``."""
    await db.executemany(
        "INSERT INTO products VALUES (?, ?, 0)",
        [(product, int(n)) for product, n in data["seats"].items()],
    )
    await db.executemany(
        "INSERT INTO entitlements VALUES (?, ?)",
        [(role, p) for role, products in data["roles"].items() for p in products],
    )


async def assign(command: AssignLicences, ctx: Context) -> Record:
    """Assign every product asked for, or none."""
    db = ctx.db
    wanted = list(dict.fromkeys(command.products))
    allowed = await _column(db, "SELECT product FROM entitlements WHERE role = ?", command.role)
    refused = [p for p in wanted if p not in allowed]
    if refused:
        raise Rejected(f"role {command.role} may not hold {', '.join(refused)}")
    held = await held_by(db, command.employee_id)
    missing = [p for p in wanted if p not in held]
    for product in missing:
        async with db.execute(
            "SELECT seats - used FROM products WHERE product = ?", (product,)
        ) as cursor:
            row = await cursor.fetchone()
        if row is None or row[0] < 1:
            return LicencesUnavailable(employee_id=command.employee_id, product=product)
    now = ctx.now.isoformat()
    for product in missing:
        await db.execute("UPDATE products SET used = used + 1 WHERE product = ?", (product,))
        await db.execute(
            "INSERT INTO licences VALUES (?, ?, ?, 'ASSIGNED', ?, ?)",
            (ctx.new_id(f"lic-{product}"), command.employee_id, product, now, now),
        )
    return LicencesAssigned(employee_id=command.employee_id, products=tuple(wanted))


async def unassign(command: UnassignLicences, ctx: Context) -> Record:
    """Free the seats the compensated commands assigned (those held; once)."""
    db = ctx.db
    async with db.execute(
        "SELECT licence_id, product FROM licences WHERE employee_id = ? AND status = 'ASSIGNED'",
        (command.employee_id,),
    ) as cursor:
        held = [(str(lid), str(product)) async for lid, product in cursor]
    if ctx.compensated:  # exactly the licences those commands assigned
        undo = [lid for lid, p in held if lid in ctx.compensated_ids(f"lic-{p}")]
    else:
        undo = [lid for lid, p in held if p in command.products]
    for licence_id in undo:
        await db.execute(
            "UPDATE licences SET status = 'UNASSIGNED', updated_at = ? WHERE licence_id = ?",
            (ctx.now.isoformat(), licence_id),
        )
        await db.execute(
            "UPDATE products SET used = used - 1 WHERE product = "
            "(SELECT product FROM licences WHERE licence_id = ?)",
            (licence_id,),
        )
    return LicencesUnassigned(employee_id=command.employee_id, products=command.products)


async def held_by(db: aiosqlite.Connection, employee_id: str) -> list[str]:
    """The products an employee holds, sorted."""
    return sorted(
        await _column(
            db,
            "SELECT product FROM licences WHERE employee_id = ? AND status = 'ASSIGNED'",
            employee_id,
        )
    )


async def _column(db: aiosqlite.Connection, sql: str, *args: object) -> list[str]:
    async with db.execute(sql, args) as cursor:
        return [str(row[0]) async for row in cursor]


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken seat invariant (empty when every seat is accounted for)."""
    broken: list[str] = []
    async with db.execute(
        "SELECT p.product, p.seats, p.used, COUNT(l.licence_id) FROM products AS p "
        "LEFT JOIN licences AS l ON l.product = p.product AND l.status = 'ASSIGNED' "
        "GROUP BY p.product"
    ) as cursor:
        async for product, seats, used, assigned in cursor:
            if used != assigned:
                broken.append(f"{product}: used {used} but {assigned} licences assigned")
            if not 0 <= used <= seats:
                broken.append(f"{product}: used {used} of {seats} seats")
    async with db.execute(
        "SELECT employee_id, product FROM licences WHERE status = 'ASSIGNED' "
        "GROUP BY employee_id, product HAVING COUNT(*) > 1"
    ) as cursor:
        async for employee_id, product in cursor:
            broken.append(f"{employee_id}: holds {product} more than once")
    return broken


async def seats_of(db: aiosqlite.Connection, product: str) -> tuple[int, int]:
    """``(free, used)`` seats of one product."""
    async with db.execute("SELECT seats, used FROM products WHERE product = ?", (product,)) as c:
        row = await c.fetchone()
    return (0, 0) if row is None else (int(row[0]) - int(row[1]), int(row[1]))


def participant() -> Participant:
    """The licensing service definition."""
    return Participant(
        name="licensing",
        handlers=(
            Handler(AssignLicences, assign, (LicencesAssigned, LicencesUnavailable)),
            Handler(UnassignLicences, unassign, (LicencesUnassigned,)),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6069,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("licensing"), app)
