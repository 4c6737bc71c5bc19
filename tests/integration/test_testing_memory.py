"""`sagas.testing.MemorySystem`: the example app end to end without a broker, as a team
tests its own: the real engine and the real services (their SQLite stores) on the
in-memory broker, some commands answered by scripted stand-ins."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from sagas import SagaState, StepStatus
from sagas.participant import Context, Subscription
from sagas.testing import MemorySystem, reply
from services import hr, inventory, orders, payments
from services.app import app
from services.messages.inventory import ReserveStock, StockReserved
from services.messages.orders import (
    Address,
    OrderCancelled,
    OrderFulfilled,
    OrderLine,
    OrderPlaced,
)
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
    DeclineReason,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
)
from services.messages.shipping import ScheduleShipment, ShipmentScheduled

ORDER_SERVICES = ("orders", "inventory", "payments", "shipping")
ADDRESS = {
    "recipient": "Ada",
    "line1": "Main St 1",
    "city": "Berlin",
    "postal_code": "10115",
    "country": "DE",
}


def request(order_id: str, customer_id: str, sku: str, quantity: int) -> dict[str, object]:
    """What ``POST /orders`` takes."""
    return {
        "order_id": order_id,
        "customer_id": customer_id,
        "items": [{"sku": sku, "quantity": quantity}],
        "currency": "EUR",
        "shipping_address": ADDRESS,
    }


def placed(order_id: str) -> OrderPlaced:
    """An order of c-1 for 2 x SKU-1 (10.00 EUR)."""
    return OrderPlaced(
        order_id=order_id,
        customer_id="c-1",
        items=(OrderLine(sku="SKU-1", quantity=2, unit_price=Decimal("5.00")),),
        total=Decimal("10.00"),
        currency="EUR",
        shipping_address=Address(**ADDRESS, line2=None),
        placed_at=datetime.now(UTC),
    )


async def order_status_is(system: MemorySystem, order_id: str, status: str) -> None:
    """Wait until the orders service has the order in ``status`` (it follows the end
    events the saga publishes, after the saga ended)."""

    async def reached() -> bool:
        return await orders.status_of(system.service("orders").store.db, order_id) == status

    await system.until(reached, f"order {order_id} to be {status}")


async def test_an_order_placed_at_the_orders_service_is_fulfilled(tmp_path: Path) -> None:
    async with MemorySystem(
        app, tmp_path, participants=ORDER_SERVICES, sagas=["order_fulfilment"]
    ) as system:
        body = await system.route("orders", "/orders", request("o-1", "c-1", "SKU-1", 2))
        assert body["status"] == "PLACED"

        instance = await system.ended("order:o-1")

        assert instance.state is SagaState.COMPLETED
        assert [s.status for s in instance.steps] == [StepStatus.SUCCEEDED] * 4
        await order_status_is(system, "o-1", "FULFILLED")
        events = [type(e.payload) for e in system.records("orders.events")]
        assert events == [OrderPlaced, OrderFulfilled]
        payments_db = system.service("payments").store.db
        assert await payments.account_of(payments_db, "c-1") == (
            Decimal("990.00"),
            Decimal("0.00"),
            Decimal("10.00"),
        )
        for name in ORDER_SERVICES:
            assert await system.service(name).invariants() == [], name


async def test_a_declined_payment_gives_the_stock_back(tmp_path: Path) -> None:
    # c-2 has 50.00 and orders 120.00: the real payments service declines it.
    async with MemorySystem(
        app, tmp_path, participants=ORDER_SERVICES, sagas=["order_fulfilment"]
    ) as system:
        await system.route("orders", "/orders", request("o-2", "c-2", "SKU-3", 1))

        instance = await system.ended("order:o-2")

        assert instance.state is SagaState.COMPENSATED
        assert [(s.name, s.status) for s in instance.steps[:2]] == [
            ("reserve_stock", StepStatus.COMPENSATED),
            ("authorize_payment", StepStatus.FAILED),
        ]
        await order_status_is(system, "o-2", "CANCELLED")
        [cancelled] = [e.payload for e in system.records("orders.events")][1:]
        assert isinstance(cancelled, OrderCancelled)
        inventory_db = system.service("inventory").store.db
        assert await inventory.stock_of(inventory_db, "SKU-3") == (10, 0)
        for name in ORDER_SERVICES:
            assert await system.service(name).invariants() == [], name


async def test_a_scripted_decline_stands_in_for_the_payments_service(tmp_path: Path) -> None:
    declines = reply(
        lambda c: PaymentDeclined(order_id=c.order_id, reason=DeclineReason.LIMIT_EXCEEDED)
    )
    async with MemorySystem(
        app,
        tmp_path,
        participants=ORDER_SERVICES,
        sagas=["order_fulfilment"],
        replies={AuthorizePayment: declines},
    ) as system:
        saga_id = await system.start(placed("o-3"))
        assert saga_id == "order:o-3"

        instance = await system.ended(saga_id)

        assert instance.state is SagaState.COMPENSATED
        assert instance.data.failure == "payment declined: LIMIT_EXCEEDED"
        # The real service never saw the command: c-1's money did not move.
        payments_db = system.service("payments").store.db
        assert await payments.account_of(payments_db, "c-1") == (
            Decimal("1000.00"),
            Decimal("0.00"),
            Decimal("0.00"),
        )
        sent = [e.payload for e in system.records("payments.commands")]
        assert [type(c) for c in sent] == [AuthorizePayment]
        assert await inventory.stock_of(system.service("inventory").store.db, "SKU-1") == (100, 0)


async def test_every_participant_scripted(tmp_path: Path) -> None:
    replies = {
        ReserveStock: reply(lambda c: StockReserved(order_id=c.order_id, reservation_id="r-1")),
        AuthorizePayment: reply(
            lambda c: PaymentAuthorized(
                order_id=c.order_id, authorization_id="a-1", amount=c.amount, currency=c.currency
            )
        ),
        ScheduleShipment: reply(
            lambda c: ShipmentScheduled(
                order_id=c.order_id, shipment_id="s-1", carrier="DHL", estimated_delivery=None
            )
        ),
        CapturePayment: reply(
            lambda c: PaymentCaptured(
                order_id=c.order_id, authorization_id=c.authorization_id, capture_id="cap-1"
            )
        ),
    }
    async with MemorySystem(
        app, tmp_path, participants=(), sagas=["order_fulfilment"], replies=replies
    ) as system:
        first, second = await system.start(placed("o-4")), await system.start(placed("o-5"))

        for saga_id in (first, second):
            instance = await system.ended(saga_id)
            assert instance.state is SagaState.COMPLETED
            assert instance.data.shipment_id == "s-1"
        ends = [e.payload for e in system.records("orders.events")]
        assert sorted(e.order_id for e in ends if isinstance(e, OrderFulfilled)) == ["o-4", "o-5"]


async def test_the_whole_app_onboards_a_hire(tmp_path: Path) -> None:
    # Every saga and all ten services; the laptop's delivery is an event the assets
    # service publishes on its own, after the command (its outbox).
    hire = {"employee_id": "e-1", "full_name": "Ada Lovelace", "role": "ENGINEER"}
    async with MemorySystem(app, tmp_path) as system:
        await system.route("hr", "/hires", {**hire, "start_date": "2030-02-01"})

        instance = await system.ended("employee:e-1")

        assert instance.state is SagaState.COMPLETED

        async def onboarded() -> bool:
            return await hr.status_of(system.service("hr").store.db, "e-1") == "ONBOARDED"

        await system.until(onboarded, "the hire to be onboarded")
        for name, service in system.services.items():
            assert await service.invariants() == [], name


async def test_a_service_that_crashes_fails_the_wait(tmp_path: Path) -> None:
    async def broken(event: OrderFulfilled, ctx: Context) -> None:
        raise RuntimeError(f"a bug in the handler of {event.order_id}")

    buggy = dataclasses.replace(
        orders.participant(), subscriptions=(Subscription("orders.events", OrderFulfilled, broken),)
    )
    others = tuple(p for p in app.participants if p.name != "orders")
    buggy_app = dataclasses.replace(app, participants=(buggy, *others))
    async with MemorySystem(buggy_app, tmp_path, participants=ORDER_SERVICES) as system:
        await system.route("orders", "/orders", request("o-6", "c-1", "SKU-1", 1))
        with pytest.raises(RuntimeError, match="a bug in the handler of o-6"):
            await order_status_is(system, "o-6", "FULFILLED")


async def test_a_command_class_no_saga_sends_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no saga of the app sends StockReserved"):
        MemorySystem(app, tmp_path, replies={StockReserved: reply(lambda c: c)})
