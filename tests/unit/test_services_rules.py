"""The business rules of the order services, through their processors (no broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope, Record
from sagas.participant import Participant
from sagas.participant.processor import Processor
from sagas.participant.testing import command_record, decode, incoming, open_processor
from services import inventory, orders, payments, shipping
from services.app import app as examples
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockItem,
    StockReleased,
    StockReserved,
    StockUnavailable,
)
from services.messages.orders import OrderCancelled, OrderFulfilled
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
    DeclineReason,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentCaptureFailed,
    PaymentDeclined,
    PaymentVoided,
    VoidPayment,
)
from services.messages.shipping import (
    Address,
    CancelShipment,
    ScheduleShipment,
    ShipmentCancelled,
    ShipmentFailed,
    ShipmentItem,
    ShipmentScheduled,
)

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


class Driver:
    """Sends commands to one processor and returns the decoded reply payloads."""

    def __init__(self, processor: Processor, codec: Codec) -> None:
        self.processor, self.codec, self.n = processor, codec, 0

    async def __call__(self, command: Record, command_id: str | None = None) -> Any:
        self.n += 1
        record = command_record(self.codec, command, command_id=command_id or f"c-{self.n}")
        [out] = await self.processor.command(record)
        return decode(self.codec, out).payload

    async def invariants(self) -> list[str]:
        check = self.processor.participant.invariants
        assert check is not None
        return await check(self.processor.store.db)


async def _driver(participant: Participant, tmp_path: Path, codec: Codec) -> Driver:
    p = await open_processor(participant, tmp_path / "s.sqlite3", codec, clock=lambda: NOW)
    return Driver(p, codec)


@pytest.fixture
async def stock(tmp_path: Path, codec: Codec) -> AsyncIterator[Driver]:
    d = await _driver(inventory.participant(), tmp_path, codec)
    yield d
    await d.processor.store.close()


@pytest.fixture
async def pay(tmp_path: Path, codec: Codec) -> AsyncIterator[Driver]:
    d = await _driver(payments.participant(), tmp_path, codec)
    yield d
    await d.processor.store.close()


@pytest.fixture
async def ship(tmp_path: Path, codec: Codec) -> AsyncIterator[Driver]:
    d = await _driver(shipping.participant(), tmp_path, codec)
    yield d
    await d.processor.store.close()


def items(*pairs: tuple[str, int]) -> tuple[StockItem, ...]:
    return tuple(StockItem(sku=s, quantity=q) for s, q in pairs)


# -- inventory -----------------------------------------------------------------------


async def test_reserve_takes_every_line_or_nothing(stock: Driver) -> None:
    short = await stock(ReserveStock(order_id="o-1", items=items(("SKU-1", 5), ("SKU-3", 11))))
    assert short == StockUnavailable(order_id="o-1", sku="SKU-3", requested=11, available=10)
    assert await inventory.stock_of(stock.processor.store.db, "SKU-1") == (100, 0)

    ok = await stock(ReserveStock(order_id="o-2", items=items(("SKU-1", 5), ("SKU-1", 5))))
    assert isinstance(ok, StockReserved)
    assert await inventory.stock_of(stock.processor.store.db, "SKU-1") == (90, 10)
    again = await stock(ReserveStock(order_id="o-2", items=items(("SKU-1", 5))))
    assert again == ok  # one reservation per order
    assert await stock.invariants() == []


async def test_unknown_sku_is_unavailable(stock: Driver) -> None:
    reply = await stock(ReserveStock(order_id="o-1", items=items(("NOPE", 1))))
    assert reply == StockUnavailable(order_id="o-1", sku="NOPE", requested=1, available=0)


async def test_release_returns_the_stock_once(stock: Driver) -> None:
    r = await stock(ReserveStock(order_id="o-1", items=items(("SKU-RARE", 1))))
    for _ in range(2):
        released = await stock(ReleaseStock(order_id="o-1", reservation_id=r.reservation_id))
        assert released == StockReleased(order_id="o-1", reservation_id=r.reservation_id)
    assert await inventory.stock_of(stock.processor.store.db, "SKU-RARE") == (1, 0)
    unknown = await stock(ReleaseStock(order_id="o-2", reservation_id="res-none"))
    assert isinstance(unknown, StockReleased)
    assert await stock.invariants() == []


# -- payments ------------------------------------------------------------------------


def authorize(amount: str, customer: str = "c-1", order: str = "o-1") -> AuthorizePayment:
    return AuthorizePayment(
        order_id=order, customer_id=customer, amount=Decimal(amount), currency="EUR"
    )


async def test_authorize_holds_or_declines(pay: Driver) -> None:
    db = pay.processor.store.db
    assert await pay(authorize("600.00")) == PaymentDeclined(
        order_id="o-1", reason=DeclineReason.LIMIT_EXCEEDED
    )
    assert await pay(authorize("60.00", "c-2")) == PaymentDeclined(
        order_id="o-1", reason=DeclineReason.INSUFFICIENT_FUNDS
    )
    assert await pay(authorize("1.00", "c-404")) == PaymentDeclined(
        order_id="o-1", reason=DeclineReason.UNKNOWN_ACCOUNT
    )
    held = await pay(authorize("120.50"))
    assert isinstance(held, PaymentAuthorized)
    assert held.amount == Decimal("120.50")
    assert await payments.account_of(db, "c-1") == (
        Decimal("879.50"),
        Decimal("120.50"),
        Decimal("0.00"),
    )
    assert await pay.invariants() == []


async def test_another_currency_is_rejected_for_good(pay: Driver) -> None:
    failed = await pay(authorize("1.00", "c-4"))
    assert isinstance(failed, CommandFailed)
    assert not failed.retryable


async def test_capture_charges_the_hold_and_void_releases_it(pay: Driver) -> None:
    db = pay.processor.store.db
    a = await pay(authorize("100.00", order="o-1"))
    b = await pay(authorize("50.00", order="o-2"))
    capture = CapturePayment(
        order_id="o-1", authorization_id=a.authorization_id, amount=Decimal("100.00")
    )
    captured = await pay(capture)
    assert isinstance(captured, PaymentCaptured)
    assert await pay(capture) == captured  # a new command id, the same capture
    voided = await pay(VoidPayment(order_id="o-2", authorization_id=b.authorization_id))
    assert isinstance(voided, PaymentVoided)
    assert await payments.account_of(db, "c-1") == (
        Decimal("900.00"),
        Decimal("0.00"),
        Decimal("100.00"),
    )
    late = await pay(
        CapturePayment(order_id="o-2", authorization_id=b.authorization_id, amount=Decimal("50.00"))
    )
    assert late == PaymentCaptureFailed(order_id="o-2", reason="the authorization was voided")
    refused = await pay(VoidPayment(order_id="o-1", authorization_id=a.authorization_id))
    assert isinstance(refused, CommandFailed)
    assert not refused.retryable
    assert await pay.invariants() == []


async def test_capture_more_than_held_fails(pay: Driver) -> None:
    a = await pay(authorize("10.00"))
    reply = await pay(
        CapturePayment(order_id="o-1", authorization_id=a.authorization_id, amount=Decimal("10.01"))
    )
    assert isinstance(reply, PaymentCaptureFailed)
    unknown = await pay(
        CapturePayment(order_id="o-1", authorization_id="auth-x", amount=Decimal("1.00"))
    )
    assert unknown == PaymentCaptureFailed(order_id="o-1", reason="unknown authorization")


# -- shipping ------------------------------------------------------------------------


def schedule(order: str, country: str = "DE") -> ScheduleShipment:
    return ScheduleShipment(
        order_id=order,
        address=Address(recipient="Ada", line1="x", city="y", postal_code="1", country=country),
        items=(ShipmentItem(sku="SKU-1", quantity=1),),
    )


async def test_schedule_picks_a_carrier_serving_the_country(ship: Driver) -> None:
    de = await ship(schedule("o-1", "DE"))
    assert isinstance(de, ShipmentScheduled)
    assert (de.carrier, str(de.estimated_delivery)) == ("DHL", "2030-01-03")
    us = await ship(schedule("o-2", "US"))
    assert us.carrier == "UPS"


async def test_capacity_runs_out_and_cancel_frees_it(ship: Driver) -> None:
    first = await ship(schedule("o-1", "LU"))
    await ship(schedule("o-2", "LU"))
    third = await ship(schedule("o-3", "LU"))
    assert third.carrier == "UPS"  # the courier is full; UPS serves everywhere
    cancelled = await ship(CancelShipment(order_id="o-1", shipment_id=first.shipment_id))
    assert cancelled == ShipmentCancelled(order_id="o-1", shipment_id=first.shipment_id)
    assert (await ship(schedule("o-4", "LU"))).carrier == "Courier"
    assert await ship.invariants() == []


async def test_no_carrier_left_fails(tmp_path: Path, codec: Codec) -> None:
    only = {"carriers": [{"name": "One", "capacity": 1, "transit_days": 1, "countries": "DE"}]}
    base = shipping.participant()
    participant = Participant(
        name="shipping",
        handlers=base.handlers,
        schema=base.schema,
        seed=base.seed,
        default_seed=only,
        invariants=base.invariants,
    )
    d = await _driver(participant, tmp_path, codec)
    try:
        assert isinstance(await d(schedule("o-1")), ShipmentScheduled)
        failed = await d(schedule("o-2"))
        assert failed == ShipmentFailed(
            order_id="o-2", reason="no carrier with capacity left serves DE"
        )
        assert await d.invariants() == []
    finally:
        await d.processor.store.close()


# -- orders --------------------------------------------------------------------------


REQUEST = {
    "order_id": "o-1",
    "customer_id": "c-1",
    "items": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-2", "quantity": 1}],
    "currency": "EUR",
    "shipping_address": {
        "recipient": "Ada",
        "line1": "Main St 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
}


async def test_placing_an_order_prices_it_and_follows_its_end(tmp_path: Path, codec: Codec) -> None:
    p = await open_processor(orders.participant(), tmp_path / "o.sqlite3", codec)
    db = p.store.db
    try:
        event, out = await orders.place(p.store, codec, REQUEST, NOW)
        assert event.total == Decimal("12.50")
        placed = decode(codec, out)
        assert (placed.id, placed.source, out.key) == (
            "order:o-1:placed",
            "/services/orders",
            b"o-1",
        )
        assert placed.payload == event
        with pytest.raises(ValueError, match="exists already"):
            await orders.place(p.store, codec, REQUEST, NOW)
        with pytest.raises(ValueError, match="unknown SKU"):
            await orders.place(
                p.store,
                codec,
                {**REQUEST, "order_id": "o-2", "items": [{"sku": "X", "quantity": 1}]},
                NOW,
            )
        fulfilled = OrderFulfilled(order_id="o-1", shipment_id="s-1", fulfilled_at=NOW)
        envelope = Envelope(
            id="e-1", type=fulfilled.SCHEMA, source="/sagas/x", time=NOW, payload=fulfilled
        )
        assert await p.event(incoming(codec, envelope, topic="orders.events")) == []
        assert await orders.status_of(db, "o-1") == "FULFILLED"
        cancelled = OrderCancelled(order_id="o-1", reason="late", cancelled_at=NOW)
        envelope = Envelope(
            id="e-2", type=cancelled.SCHEMA, source="/sagas/x", time=NOW, payload=cancelled
        )
        await p.event(incoming(codec, envelope, topic="orders.events"))
        assert await orders.status_of(db, "o-1") == "FULFILLED"  # an ended order stays
        assert await orders.invariants(db) == ["o-1: OrderPlaced not published yet"]
    finally:
        await p.store.close()
