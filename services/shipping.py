"""The shipping service: carriers with a capacity, serving some countries.

Rules:
- ``ScheduleShipment`` books the first carrier (by priority) that serves the address's
  country and has capacity left; none: ``ShipmentFailed`` with the reason. An order that
  already has a scheduled shipment gets it again. The estimated delivery is the
  carrier's transit days after today.
- ``CancelShipment`` cancels the shipments booked by the commands it compensates (its
  ``compensates`` header; without it, the shipment named) and frees their slots.
  Cancelling a cancelled or unknown shipment changes nothing and still replies
  ``ShipmentCancelled``.

Invariants (`invariants`): per carrier ``0 <= booked <= capacity`` and ``booked`` equals
its scheduled shipments.

Run it with ``python -m services.shipping``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant
from services.messages.shipping import (
    CancelShipment,
    ScheduleShipment,
    ShipmentCancelled,
    ShipmentFailed,
    ShipmentScheduled,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS carriers (
    name         TEXT PRIMARY KEY,
    priority     INTEGER NOT NULL,
    capacity     INTEGER NOT NULL CHECK (capacity >= 0),
    booked       INTEGER NOT NULL CHECK (booked >= 0),
    transit_days INTEGER NOT NULL,
    countries    TEXT NOT NULL             -- comma-separated ISO codes, or '*'
);
CREATE TABLE IF NOT EXISTS shipments (
    shipment_id TEXT PRIMARY KEY,
    order_id    TEXT NOT NULL,
    carrier     TEXT NOT NULL REFERENCES carriers,
    status      TEXT NOT NULL CHECK (status IN ('SCHEDULED', 'CANCELLED')),
    estimated   TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
"""

DEFAULT_SEED: dict[str, Any] = {
    "carriers": [
        {"name": "Courier", "capacity": 2, "transit_days": 1, "countries": "LU"},
        {"name": "DHL", "capacity": 100, "transit_days": 2, "countries": "DE,AT,NL,FR"},
        {"name": "UPS", "capacity": 50, "transit_days": 4, "countries": "*"},
    ]
}
"""The deterministic default carriers, in priority order."""


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"carriers": [{name, capacity, transit_days, countries}]}``."""
    rows = [
        (c["name"], i, int(c["capacity"]), 0, int(c["transit_days"]), c["countries"])
        for i, c in enumerate(data["carriers"])
    ]
    await db.executemany("INSERT INTO carriers VALUES (?, ?, ?, ?, ?, ?)", rows)


async def schedule(command: ScheduleShipment, ctx: Context) -> Record:
    """Book a carrier for the order, or reply why none can take it."""
    db = ctx.db
    async with db.execute(
        "SELECT shipment_id, carrier, estimated FROM shipments "
        "WHERE order_id = ? AND status = 'SCHEDULED'",
        (command.order_id,),
    ) as cursor:
        existing = await cursor.fetchone()
    if existing is not None:
        return _scheduled(command, existing[0], existing[1], date.fromisoformat(existing[2]))
    if not command.items:
        return ShipmentFailed(order_id=command.order_id, reason="nothing to ship")
    country = command.address.country
    async with db.execute(
        "SELECT name, transit_days FROM carriers WHERE booked < capacity AND "
        "(countries = '*' OR ',' || countries || ',' LIKE '%,' || ? || ',%') "
        "ORDER BY priority LIMIT 1",
        (country,),
    ) as cursor:
        carrier = await cursor.fetchone()
    if carrier is None:
        reason = f"no carrier with capacity left serves {country}"
        return ShipmentFailed(order_id=command.order_id, reason=reason)
    name, transit_days = carrier
    shipment_id = ctx.new_id("ship")
    estimated = ctx.now.date() + timedelta(days=int(transit_days))
    await db.execute("UPDATE carriers SET booked = booked + 1 WHERE name = ?", (name,))
    await db.execute(
        "INSERT INTO shipments VALUES (?, ?, ?, 'SCHEDULED', ?, ?)",
        (shipment_id, command.order_id, name, estimated.isoformat(), ctx.now.isoformat()),
    )
    return _scheduled(command, shipment_id, name, estimated)


async def cancel(command: CancelShipment, ctx: Context) -> Record:
    """Cancel what the compensated commands booked and free the slots (once)."""
    targets = ctx.compensated_ids("ship") if ctx.compensated else (command.shipment_id,)
    cancelled = [s for s in targets if await _cancel(ctx.db, s)]
    shown = command.shipment_id or (cancelled[0] if cancelled else "")
    return ShipmentCancelled(order_id=command.order_id, shipment_id=shown)


async def _cancel(db: aiosqlite.Connection, shipment_id: str) -> bool:
    async with db.execute(
        "SELECT carrier FROM shipments WHERE shipment_id = ? AND status = 'SCHEDULED'",
        (shipment_id,),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return False
    await db.execute(
        "UPDATE shipments SET status = 'CANCELLED' WHERE shipment_id = ?", (shipment_id,)
    )
    await db.execute("UPDATE carriers SET booked = booked - 1 WHERE name = ?", (row[0],))
    return True


def _scheduled(command: ScheduleShipment, shipment_id: str, carrier: str, eta: date) -> Record:
    return ShipmentScheduled(
        order_id=command.order_id,
        shipment_id=shipment_id,
        carrier=carrier,
        estimated_delivery=eta,
    )


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken capacity invariant (empty when all hold)."""
    broken: list[str] = []
    async with db.execute(
        "SELECT c.name, c.capacity, c.booked, COUNT(s.shipment_id) FROM carriers AS c "
        "LEFT JOIN shipments AS s ON s.carrier = c.name AND s.status = 'SCHEDULED' "
        "GROUP BY c.name ORDER BY c.name"
    ) as cursor:
        async for name, capacity, booked, scheduled in cursor:
            if not 0 <= booked <= capacity:
                broken.append(f"{name}: booked {booked} outside 0..{capacity}")
            if booked != scheduled:
                broken.append(f"{name}: booked {booked} but {scheduled} shipments scheduled")
    return broken


def participant() -> Participant:
    """The shipping service definition."""
    return Participant(
        name="shipping",
        handlers=(
            Handler(ScheduleShipment, schedule, (ShipmentScheduled, ShipmentFailed)),
            Handler(CancelShipment, cancel, (ShipmentCancelled,)),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6064,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("shipping"), app)
