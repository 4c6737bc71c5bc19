"""The orders service: customers place orders here; it follows how they end.

- `place_order` (and ``POST /orders`` on the web endpoint) prices the lines from the
  catalogue, stores the order as ``PLACED`` and publishes ``OrderPlaced`` to
  ``orders.events`` (which starts the order fulfilment saga). The order row and the
  encoded event are written in one SQLite transaction (an outbox): an event not yet
  acknowledged by Kafka is published again when the service starts. Its ``ce_id`` is
  ``order:<order_id>:placed``, so a second publication is a duplicate downstream.
- It follows ``OrderFulfilled`` / ``OrderCancelled`` on ``orders.events`` and moves a
  ``PLACED`` order to ``FULFILLED`` / ``CANCELLED``.

Invariants (`invariants`): every order's total is the sum of its lines, a fulfilled
order has a shipment, and every order's event was published.

Run it with ``python -m services.orders``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import aiosqlite

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope
from sagas.participant import (
    Context,
    JSONObject,
    Outbound,
    Outbox,
    Participant,
    Store,
    Subscription,
)
from services.messages.orders import (
    Address,
    OrderCancelled,
    OrderFulfilled,
    OrderLine,
    OrderPlaced,
)

if TYPE_CHECKING:
    from sagas.participant import ParticipantService

EVENTS = "orders.events"

SCHEMA = """
CREATE TABLE IF NOT EXISTS catalogue (sku TEXT PRIMARY KEY, unit_price TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id     TEXT PRIMARY KEY,
    customer_id  TEXT NOT NULL,
    total        TEXT NOT NULL,
    currency     TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('PLACED', 'FULFILLED', 'CANCELLED')),
    placed_at    TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    shipment_id  TEXT,
    reason       TEXT,
    event_headers TEXT NOT NULL,          -- the outbox: the encoded OrderPlaced
    event_value  BLOB NOT NULL,
    published    INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id   TEXT NOT NULL REFERENCES orders,
    line       INTEGER NOT NULL,
    sku        TEXT NOT NULL,
    quantity   INTEGER NOT NULL CHECK (quantity > 0),
    unit_price TEXT NOT NULL,
    PRIMARY KEY (order_id, line)
);
"""

DEFAULT_SEED: dict[str, Any] = {
    "catalogue": {"SKU-1": "5.00", "SKU-2": "2.50", "SKU-3": "120.00", "SKU-RARE": "40.00"}
}
"""The deterministic default catalogue: unit price per SKU."""


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"catalogue": {sku: unit price}}``."""
    rows = [(sku, str(Decimal(price))) for sku, price in data["catalogue"].items()]
    await db.executemany("INSERT INTO catalogue VALUES (?, ?)", rows)


async def place(
    store: Store, codec: Codec, request: JSONObject, now: datetime, *, topic: str = EVENTS
) -> tuple[OrderPlaced, Outbound]:
    """Store a new order from ``request`` and return its event, to publish.

    ``request``: ``{"customer_id", "items": [{"sku", "quantity"}], "currency",
    "shipping_address": {recipient, line1, line2?, city, postal_code, country},
    "order_id"?}``.

    Raises:
        ValueError: unknown SKU, no lines, a quantity below one, or a known order id.
        RegistryError: the schema registry could not be reached (nothing was stored).
    """
    await codec.prepare()  # off the event loop, before the transaction (see Codec.prepare)
    order_id = str(request.get("order_id") or f"o-{uuid.uuid4().hex[:12]}")
    async with store.transaction() as db:
        lines = [await _priced(db, item) for item in request["items"]]
        if not lines:
            raise ValueError("an order needs at least one line")
        event = OrderPlaced(
            order_id=order_id,
            customer_id=str(request["customer_id"]),
            items=tuple(lines),
            total=sum((line.unit_price * line.quantity for line in lines), Decimal("0.00")),
            currency=str(request.get("currency", "EUR")),
            shipping_address=Address(**request["shipping_address"]),
            placed_at=now,
        )
        headers, value = codec.encode(
            Envelope(
                id=f"order:{order_id}:placed",
                type=event.SCHEMA,
                source="/services/orders",
                time=now,
                payload=event,
            )
        )
        try:
            await db.execute(
                "INSERT INTO orders VALUES (?, ?, ?, ?, 'PLACED', ?, ?, NULL, NULL, ?, ?, 0)",
                (
                    order_id,
                    event.customer_id,
                    str(event.total),
                    event.currency,
                    now.isoformat(),
                    now.isoformat(),
                    json.dumps([[n, v.hex()] for n, v in headers]),
                    value,
                ),
            )
        except aiosqlite.IntegrityError as exc:
            raise ValueError(f"order {order_id} exists already") from exc
        await db.executemany(
            "INSERT INTO order_lines VALUES (?, ?, ?, ?, ?)",
            [
                (order_id, i, line.sku, line.quantity, str(line.unit_price))
                for i, line in enumerate(lines)
            ],
        )
    out = Outbound(topic=topic, key=order_id.encode(), value=value, headers=headers)
    return event, out


async def _priced(db: aiosqlite.Connection, item: Mapping[str, Any]) -> OrderLine:
    sku, quantity = str(item["sku"]), int(item["quantity"])
    if quantity < 1:
        raise ValueError(f"quantity of {sku} must be at least 1")
    async with db.execute("SELECT unit_price FROM catalogue WHERE sku = ?", (sku,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise ValueError(f"unknown SKU {sku}")
    return OrderLine(sku=sku, quantity=quantity, unit_price=Decimal(row[0]))


async def place_order(service: ParticipantService, request: JSONObject) -> OrderPlaced:
    """Place an order and publish ``OrderPlaced`` (see `place`)."""
    event, out = await place(
        service.store,
        service.codec,
        request,
        service.processor.clock(),
        topic=service.topic(EVENTS),
    )
    await OUTBOX.publish(service, event.order_id, out)
    return event


OUTBOX = Outbox(table="orders", key="order_id", topic=EVENTS)


async def publish_pending(service: ParticipantService) -> None:
    """Publish every stored order event Kafka has not acknowledged yet (the outbox)."""
    await OUTBOX.publish_pending(service)


async def _post_order(service: ParticipantService, body: JSONObject) -> JSONObject:
    event = await place_order(service, body)
    return {"order_id": event.order_id, "total": str(event.total), "status": "PLACED"}


async def fulfilled(event: OrderFulfilled, ctx: Context) -> None:
    """A placed order was fulfilled."""
    await ctx.db.execute(
        "UPDATE orders SET status = 'FULFILLED', shipment_id = ?, updated_at = ? "
        "WHERE order_id = ? AND status = 'PLACED'",
        (event.shipment_id, ctx.now.isoformat(), event.order_id),
    )


async def cancelled(event: OrderCancelled, ctx: Context) -> None:
    """A placed order was cancelled."""
    await ctx.db.execute(
        "UPDATE orders SET status = 'CANCELLED', reason = ?, updated_at = ? "
        "WHERE order_id = ? AND status = 'PLACED'",
        (event.reason, ctx.now.isoformat(), event.order_id),
    )


async def status_of(db: aiosqlite.Connection, order_id: str) -> str | None:
    """The status of an order (``None``: unknown)."""
    async with db.execute("SELECT status FROM orders WHERE order_id = ?", (order_id,)) as c:
        row = await c.fetchone()
    return None if row is None else str(row[0])


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken order invariant (empty when all hold)."""
    broken: list[str] = []
    async with db.execute(
        "SELECT o.order_id, o.total, o.status, o.shipment_id, o.published, "
        "GROUP_CONCAT(l.quantity || '*' || l.unit_price) FROM orders AS o "
        "LEFT JOIN order_lines AS l ON l.order_id = o.order_id GROUP BY o.order_id"
    ) as cursor:
        async for order_id, total, status, shipment_id, published, lines in cursor:
            products = [p.split("*") for p in (lines or "").split(",") if p]
            lines_total = sum((int(q) * Decimal(u) for q, u in products), Decimal("0.00"))
            if Decimal(total) != lines_total:
                broken.append(f"{order_id}: total {total} != lines {lines_total}")
            if status == "FULFILLED" and not shipment_id:
                broken.append(f"{order_id}: fulfilled without a shipment")
            if not published:
                broken.append(f"{order_id}: OrderPlaced not published yet")
    return broken


def participant() -> Participant:
    """The orders service definition."""
    return Participant(
        name="orders",
        subscriptions=(
            Subscription(EVENTS, OrderFulfilled, fulfilled, reads=("order_id", "shipment_id")),
            Subscription(EVENTS, OrderCancelled, cancelled, reads=("order_id", "reason")),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6061,
        routes={"/orders": _post_order},
        on_start=publish_pending,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("orders"), app)
