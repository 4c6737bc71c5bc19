"""The order fulfilment saga: stock, payment, shipment, then the charge.

``OrderPlaced`` (on ``orders.events``) starts one instance per order, saga id
``order:{order_id}``. The steps run in order::

    reserve_stock      ReserveStock     -> StockReserved | StockUnavailable   undo: ReleaseStock
    authorize_payment  AuthorizePayment -> PaymentAuthorized | PaymentDeclined undo: VoidPayment
    schedule_shipment  ScheduleShipment -> ShipmentScheduled | ShipmentFailed  undo: CancelShipment
    capture_payment    CapturePayment   -> PaymentCaptured | PaymentCaptureFailed   (the pivot)

Capturing the payment is the point of no return: until the customer is charged,
everything can still be undone; once charged, the order is fulfilled. When any step
fails before that, the completed steps are undone in reverse order and ``OrderCancelled``
is published; when every step succeeds, ``OrderFulfilled`` is.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sagas import Command, Compensation, Emit, On, RetryPolicy, Saga, Start, Step, StepKind
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockItem,
    StockReleased,
    StockReserved,
    StockUnavailable,
)
from services.messages.orders import OrderCancelled, OrderFulfilled, OrderPlaced
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
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

EVENTS = "orders.events"

# A participant that did the work but answered slowly replays its stored reply when the
# same command id is sent again, so resending on a timeout is always safe.
FORWARD_RETRY = RetryPolicy(
    max_attempts=3, initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=10)
)
CAPTURE_RETRY = RetryPolicy(
    max_attempts=5, initial_backoff=timedelta(seconds=2), max_backoff=timedelta(seconds=30)
)
UNDO_RETRY = RetryPolicy(
    max_attempts=8, initial_backoff=timedelta(seconds=1), max_backoff=timedelta(minutes=1)
)


@dataclass(frozen=True, kw_only=True)
class Line:
    """One ordered product."""

    sku: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class OrderData:
    """What the saga knows about one order, filled in as the steps reply."""

    order_id: str
    customer_id: str
    lines: tuple[Line, ...]
    total: Decimal
    currency: str
    address: Address
    placed_at: datetime
    reservation_id: str | None = None
    authorization_id: str | None = None
    shipment_id: str | None = None
    capture_id: str | None = None
    failure: str | None = None

    @staticmethod
    def from_event(event: OrderPlaced) -> OrderData:
        """The initial data of the saga an ``OrderPlaced`` starts."""
        a = event.shipping_address
        return OrderData(
            order_id=event.order_id,
            customer_id=event.customer_id,
            lines=tuple(Line(sku=i.sku, quantity=i.quantity) for i in event.items),
            total=event.total,
            currency=event.currency,
            address=Address(
                recipient=a.recipient,
                line1=a.line1,
                line2=a.line2,
                city=a.city,
                postal_code=a.postal_code,
                country=a.country,
            ),
            placed_at=event.placed_at,
        )


# -- commands ------------------------------------------------------------------------


def reserve_stock(d: OrderData) -> ReserveStock:
    items = tuple(StockItem(sku=line.sku, quantity=line.quantity) for line in d.lines)
    return ReserveStock(order_id=d.order_id, items=items)


def release_stock(d: OrderData) -> ReleaseStock:
    return ReleaseStock(order_id=d.order_id, reservation_id=d.reservation_id or "")


def authorize_payment(d: OrderData) -> AuthorizePayment:
    return AuthorizePayment(
        order_id=d.order_id, customer_id=d.customer_id, amount=d.total, currency=d.currency
    )


def void_payment(d: OrderData) -> VoidPayment:
    return VoidPayment(order_id=d.order_id, authorization_id=d.authorization_id or "")


def schedule_shipment(d: OrderData) -> ScheduleShipment:
    items = tuple(ShipmentItem(sku=line.sku, quantity=line.quantity) for line in d.lines)
    return ScheduleShipment(order_id=d.order_id, address=d.address, items=items)


def cancel_shipment(d: OrderData) -> CancelShipment:
    return CancelShipment(order_id=d.order_id, shipment_id=d.shipment_id or "")


def capture_payment(d: OrderData) -> CapturePayment:
    return CapturePayment(
        order_id=d.order_id, authorization_id=d.authorization_id or "", amount=d.total
    )


# -- replies -------------------------------------------------------------------------


def with_reservation(d: OrderData, r: StockReserved) -> OrderData:
    return replace(d, reservation_id=r.reservation_id)


def out_of_stock(d: OrderData, r: StockUnavailable) -> OrderData:
    return replace(d, failure=f"out of stock: {r.sku} ({r.available} of {r.requested})")


def with_authorization(d: OrderData, r: PaymentAuthorized) -> OrderData:
    return replace(d, authorization_id=r.authorization_id)


def declined(d: OrderData, r: PaymentDeclined) -> OrderData:
    return replace(d, failure=f"payment declined: {r.reason}")


def with_shipment(d: OrderData, r: ShipmentScheduled) -> OrderData:
    return replace(d, shipment_id=r.shipment_id)


def not_shippable(d: OrderData, r: ShipmentFailed) -> OrderData:
    return replace(d, failure=f"shipment failed: {r.reason}")


def with_capture(d: OrderData, r: PaymentCaptured) -> OrderData:
    return replace(d, capture_id=r.capture_id)


def not_captured(d: OrderData, r: PaymentCaptureFailed) -> OrderData:
    return replace(d, failure=f"payment capture failed: {r.reason}")


# -- end events ----------------------------------------------------------------------
# Builders read no clock (decide() gives equal results for equal arguments): an Emit
# builder taking two arguments gets the time of the decision that ends the saga.


def order_fulfilled(d: OrderData, now: datetime) -> OrderFulfilled:
    return OrderFulfilled(order_id=d.order_id, shipment_id=d.shipment_id or "", fulfilled_at=now)


def order_cancelled(d: OrderData, now: datetime) -> OrderCancelled:
    return OrderCancelled(order_id=d.order_id, reason=d.failure or "cancelled", cancelled_at=now)


def order_key(d: OrderData) -> str:
    return d.order_id


EXAMPLE = OrderData(
    order_id="o-1",
    customer_id="c-1",
    lines=(Line(sku="SKU-1", quantity=1),),
    total=Decimal("9.90"),
    currency="EUR",
    address=Address(
        recipient="Ada", line1="Main St 1", city="Berlin", postal_code="10115", country="DE"
    ),
    placed_at=datetime(2030, 1, 1, tzinfo=UTC),
    reservation_id="r-1",
    authorization_id="a-1",
    shipment_id="s-1",
)


def _undo(command: Command[OrderData, Any], success: type[Any]) -> Compensation[OrderData]:
    return Compensation(command=command, success=(success,), retry=UNDO_RETRY)


ORDER_FULFILMENT: Saga[OrderData] = Saga(
    name="order_fulfilment",
    version=1,
    data=OrderData,
    starts=(
        Start(
            OrderPlaced,
            "order:{order_id}",
            OrderData.from_event,
            reads=(
                "customer_id",
                "items",
                "total",
                "currency",
                "shipping_address",
                "placed_at",
            ),
        ),
    ),
    steps=(
        Step(
            name="reserve_stock",
            command=Command(ReserveStock, "inventory", reserve_stock),
            success=(On(StockReserved, with_reservation, reads=("reservation_id",)),),
            failure=(On(StockUnavailable, out_of_stock, reads=("sku", "available", "requested")),),
            compensation=_undo(Command(ReleaseStock, "inventory", release_stock), StockReleased),
            retry=FORWARD_RETRY,
        ),
        Step(
            name="authorize_payment",
            command=Command(AuthorizePayment, "payments", authorize_payment),
            success=(On(PaymentAuthorized, with_authorization, reads=("authorization_id",)),),
            failure=(On(PaymentDeclined, declined, reads=("reason",)),),
            compensation=_undo(Command(VoidPayment, "payments", void_payment), PaymentVoided),
            retry=FORWARD_RETRY,
        ),
        Step(
            name="schedule_shipment",
            command=Command(ScheduleShipment, "shipping", schedule_shipment),
            success=(On(ShipmentScheduled, with_shipment, reads=("shipment_id",)),),
            failure=(On(ShipmentFailed, not_shippable, reads=("reason",)),),
            compensation=_undo(
                Command(CancelShipment, "shipping", cancel_shipment), ShipmentCancelled
            ),
            retry=FORWARD_RETRY,
        ),
        Step(
            name="capture_payment",
            kind=StepKind.PIVOT,
            command=Command(CapturePayment, "payments", capture_payment),
            success=(On(PaymentCaptured, with_capture, reads=("capture_id",)),),
            failure=(On(PaymentCaptureFailed, not_captured, reads=("reason",)),),
            retry=CAPTURE_RETRY,
        ),
    ),
    deadline=timedelta(minutes=15),
    on_completed=Emit(OrderFulfilled, EVENTS, order_fulfilled, key=order_key),
    on_compensated=Emit(OrderCancelled, EVENTS, order_cancelled, key=order_key),
    example=EXAMPLE,
)
"""The order fulfilment saga definition."""
