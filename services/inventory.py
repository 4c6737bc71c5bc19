"""The inventory service: stock per SKU, reserved per order and released on request.

Rules:
- ``ReserveStock`` reserves every line of an order, or nothing: when a SKU is short
  (or unknown: nothing in stock) it replies ``StockUnavailable`` naming the first
  short SKU. An order that already holds a reservation gets it again.
- ``ReleaseStock`` returns to the stock the reservations made by the commands it
  compensates (its ``compensates`` header: those named there that never arrived are
  refused when they come), whatever its ``reservation_id`` says (empty when the saga
  gave up before the reply); without the header, the reservation named. Releasing a
  reservation that is already released or unknown changes nothing and still replies
  ``StockReleased``: a compensation must be able to finish.
- A reservation is a hold for ``HOLD_TTL`` (an hour, well past the saga's 15-minute
  deadline): ``OrderFulfilled`` (followed on ``orders.events``) makes it permanent; a
  hold still unconfirmed when its time is up is released by the sweep (`expire_holds`,
  a timer every ``SWEEP``), so stock never stays reserved for a saga that is gone.

Invariants (`invariants`): per SKU, ``available + reserved`` equals the seeded
quantity, neither is negative, and ``reserved`` equals the active reservations' lines;
no hold is active past its expiry (plus two sweeps), an expired hold holds nothing,
and no order was fulfilled after its hold expired.

Run it with ``python -m services.inventory``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Every, Handler, Participant, Subscription
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReserved,
    StockUnavailable,
)
from services.messages.orders import OrderFulfilled

HOLD_TTL = timedelta(hours=1)
"""How long a reservation holds its stock until its order is fulfilled."""
SWEEP = timedelta(minutes=1)
"""How often expired holds are released."""

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
CREATE TABLE IF NOT EXISTS holds (
    reservation_id TEXT PRIMARY KEY REFERENCES reservations,
    expires_at     TEXT,               -- NULL once the order was fulfilled
    expired_at     TEXT,               -- when the sweep released it
    confirmed_at   TEXT                -- when OrderFulfilled came
);
CREATE INDEX IF NOT EXISTS holds_by_expiry ON holds (expires_at);
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
    expires = ctx.now + HOLD_TTL
    await db.execute(
        "INSERT INTO holds VALUES (?, ?, NULL, NULL)", (reservation_id, expires.isoformat())
    )
    return StockReserved(order_id=command.order_id, reservation_id=reservation_id)


async def release(command: ReleaseStock, ctx: Context) -> Record:
    """Return to the stock what the compensated commands reserved (once each)."""
    # with the header: exactly what those commands made, whatever the payload says
    targets = ctx.compensated_ids("res") if ctx.compensated else (command.reservation_id,)
    released = [r for r in targets if await _release(ctx.db, r)]
    shown = command.reservation_id or (released[0] if released else "")
    return StockReleased(order_id=command.order_id, reservation_id=shown)


async def _release(db: aiosqlite.Connection, reservation_id: str) -> bool:
    """Return an active reservation's units to the stock; False when it holds none."""
    cursor = await db.execute(
        "UPDATE reservations SET status = 'RELEASED' "
        "WHERE reservation_id = ? AND status = 'ACTIVE'",
        (reservation_id,),
    )
    if cursor.rowcount != 1:
        return False
    await db.execute(
        "UPDATE stock SET available = available + l.quantity, reserved = reserved - l.quantity "
        "FROM reservation_lines AS l WHERE l.reservation_id = ? AND l.sku = stock.sku",
        (reservation_id,),
    )
    return True


async def fulfilled(event: OrderFulfilled, ctx: Context) -> None:
    """The order's stock is sold: its hold no longer expires."""
    await ctx.db.execute(
        "UPDATE holds SET expires_at = NULL, confirmed_at = ? WHERE reservation_id IN "
        "(SELECT reservation_id FROM reservations WHERE order_id = ?)",
        (ctx.now.isoformat(), event.order_id),
    )


async def expire_holds(db: aiosqlite.Connection, now: datetime) -> None:
    """Release every active reservation whose hold expired (the saga is gone)."""
    async with db.execute(
        "SELECT h.reservation_id FROM holds AS h JOIN reservations AS r USING (reservation_id) "
        "WHERE r.status = 'ACTIVE' AND h.expires_at IS NOT NULL AND h.expires_at <= ?",
        (now.isoformat(),),
    ) as cursor:
        expired = [str(row[0]) async for row in cursor]
    for reservation_id in expired:
        await _release(db, reservation_id)
        await db.execute(
            "UPDATE holds SET expired_at = ? WHERE reservation_id = ?",
            (now.isoformat(), reservation_id),
        )


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
    return broken + await hold_problems(db, datetime.now(UTC))


async def hold_problems(db: aiosqlite.Connection, now: datetime) -> list[str]:
    """Holds that outlived their time, or expired yet hold stock or were sold."""
    broken: list[str] = []
    overdue = (now - 2 * SWEEP).isoformat()
    async with db.execute(
        "SELECT h.reservation_id, h.expires_at, h.expired_at, h.confirmed_at, r.status "
        "FROM holds AS h JOIN reservations AS r USING (reservation_id) "
        "WHERE (r.status = 'ACTIVE' AND h.expires_at < ?) OR h.expired_at IS NOT NULL",
        (overdue,),
    ) as cursor:
        async for reservation_id, expires_at, expired_at, confirmed_at, status in cursor:
            if expired_at is None:
                broken.append(f"{reservation_id}: held past its expiry {expires_at}")
            elif status == "ACTIVE":
                broken.append(f"{reservation_id}: expired at {expired_at} but still holds stock")
            if expired_at is not None and confirmed_at is not None:
                broken.append(f"{reservation_id}: its order was fulfilled after it expired")
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
        subscriptions=(Subscription("orders.events", OrderFulfilled, fulfilled, ("order_id",)),),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6062,
        timers=(Every(SWEEP, expire_holds),),
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("inventory"), app)
