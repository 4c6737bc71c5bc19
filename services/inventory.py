"""The inventory service: stock per SKU, reserved per order and released on request.

Rules:
- ``ReserveStock`` reserves every line of an order, or nothing: when a SKU is short
  (or unknown: nothing in stock) it replies ``StockUnavailable`` naming the first
  short SKU. An order that already holds a reservation gets it again.
- ``ReleaseStock`` returns a reservation's quantities to the stock. Releasing a
  reservation that is already released or unknown changes nothing and still replies
  ``StockReleased``: a compensation must be able to finish.

Invariants (`invariants`): per SKU, ``available + reserved`` equals the seeded
quantity, neither is negative, and ``reserved`` equals the active reservations' lines.

Run it with ``python -m services.inventory``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReserved,
    StockUnavailable,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
    sku       TEXT PRIMARY KEY,
    available INTEGER NOT NULL CHECK (available >= 0),
    reserved  INTEGER NOT NULL CHECK (reserved >= 0),
    seeded    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS reservations (
    reservation_id TEXT PRIMARY KEY,
    order_id       TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('ACTIVE', 'RELEASED')),
    created_at     TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reservation_lines (
    reservation_id TEXT NOT NULL REFERENCES reservations,
    sku            TEXT NOT NULL REFERENCES stock,
    quantity       INTEGER NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (reservation_id, sku)
);
"""

DEFAULT_SEED: dict[str, Any] = {
    "stock": {"SKU-1": 100, "SKU-2": 50, "SKU-3": 10, "SKU-RARE": 1, "SKU-NONE": 0}
}
"""The deterministic default: units in stock per SKU."""


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"stock": {sku: units}}``."""
    rows = [(sku, int(units), 0, int(units)) for sku, units in data["stock"].items()]
    await db.executemany("INSERT INTO stock VALUES (?, ?, ?, ?)", rows)


async def reserve(command: ReserveStock, ctx: Context) -> Record:
    """Reserve every line of the order, or reply which SKU is short."""
    db = ctx.db
    async with db.execute(
        "SELECT reservation_id FROM reservations WHERE order_id = ? AND status = 'ACTIVE'",
        (command.order_id,),
    ) as cursor:
        existing = await cursor.fetchone()
    if existing is not None:
        return StockReserved(order_id=command.order_id, reservation_id=existing[0])
    wanted: dict[str, int] = {}
    for item in command.items:
        wanted[item.sku] = wanted.get(item.sku, 0) + item.quantity
    for sku, quantity in wanted.items():
        available = await _available(db, sku)
        if available < quantity:
            return StockUnavailable(
                order_id=command.order_id, sku=sku, requested=quantity, available=available
            )
    reservation_id = ctx.new_id("res")
    await db.execute(
        "INSERT INTO reservations VALUES (?, ?, 'ACTIVE', ?)",
        (reservation_id, command.order_id, ctx.now.isoformat()),
    )
    for sku, quantity in wanted.items():
        await db.execute(
            "UPDATE stock SET available = available - ?, reserved = reserved + ? WHERE sku = ?",
            (quantity, quantity, sku),
        )
        await db.execute(
            "INSERT INTO reservation_lines VALUES (?, ?, ?)", (reservation_id, sku, quantity)
        )
    return StockReserved(order_id=command.order_id, reservation_id=reservation_id)


async def release(command: ReleaseStock, ctx: Context) -> Record:
    """Return a reservation's units to the stock (once; later releases change nothing)."""
    db = ctx.db
    cursor = await db.execute(
        "UPDATE reservations SET status = 'RELEASED' "
        "WHERE reservation_id = ? AND status = 'ACTIVE'",
        (command.reservation_id,),
    )
    if cursor.rowcount == 1:
        await db.execute(
            "UPDATE stock SET available = available + l.quantity, reserved = reserved - l.quantity "
            "FROM reservation_lines AS l WHERE l.reservation_id = ? AND l.sku = stock.sku",
            (command.reservation_id,),
        )
    return StockReleased(order_id=command.order_id, reservation_id=command.reservation_id)


async def _available(db: aiosqlite.Connection, sku: str) -> int:
    async with db.execute("SELECT available FROM stock WHERE sku = ?", (sku,)) as cursor:
        row = await cursor.fetchone()
    return 0 if row is None else int(row[0])


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken stock invariant (empty when the books balance)."""
    broken: list[str] = []
    async with db.execute(
        "SELECT s.sku, s.available, s.reserved, s.seeded, COALESCE(SUM(l.quantity), 0) "
        "FROM stock AS s LEFT JOIN reservation_lines AS l ON l.sku = s.sku AND "
        "l.reservation_id IN (SELECT reservation_id FROM reservations WHERE status = 'ACTIVE') "
        "GROUP BY s.sku ORDER BY s.sku"
    ) as cursor:
        async for sku, available, reserved, seeded, active in cursor:
            if available + reserved != seeded:
                broken.append(f"{sku}: available {available} + reserved {reserved} != {seeded}")
            if reserved != active:
                broken.append(f"{sku}: reserved {reserved} but active reservations hold {active}")
            if available < 0 or reserved < 0:
                broken.append(f"{sku}: negative stock")
    return broken


async def stock_of(db: aiosqlite.Connection, sku: str) -> tuple[int, int]:
    """``(available, reserved)`` of one SKU."""
    async with db.execute("SELECT available, reserved FROM stock WHERE sku = ?", (sku,)) as c:
        row = await c.fetchone()
    return (0, 0) if row is None else (int(row[0]), int(row[1]))


def participant() -> Participant:
    """The inventory service definition."""
    return Participant(
        name="inventory",
        handlers=(
            Handler(ReserveStock, reserve, (StockReserved, StockUnavailable)),
            Handler(ReleaseStock, release, (StockReleased,)),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6062,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("inventory"), app)
