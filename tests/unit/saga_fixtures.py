"""Small message classes and saga definitions for the definition and machine tests.

They stand alone on purpose: the real catalogue (sagas.contracts.messages) may change.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import ClassVar

from sagas import (
    Await,
    Command,
    Compensation,
    Emit,
    On,
    Parallel,
    RetryPolicy,
    Saga,
    Start,
    Step,
    StepKind,
)
from sagas.contracts.record import Envelope, Record

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class OrderPlaced(Record):
    SCHEMA: ClassVar[str] = "test.OrderPlaced"
    order_id: str
    amount: Decimal
    express: bool = False


@dataclass(frozen=True, kw_only=True)
class ReserveStock(Record):
    SCHEMA: ClassVar[str] = "test.ReserveStock"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class StockReserved(Record):
    SCHEMA: ClassVar[str] = "test.StockReserved"
    order_id: str
    reservation_id: str


@dataclass(frozen=True, kw_only=True)
class StockUnavailable(Record):
    SCHEMA: ClassVar[str] = "test.StockUnavailable"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class ReleaseStock(Record):
    SCHEMA: ClassVar[str] = "test.ReleaseStock"
    reservation_id: str


@dataclass(frozen=True, kw_only=True)
class StockReleased(Record):
    SCHEMA: ClassVar[str] = "test.StockReleased"
    reservation_id: str


@dataclass(frozen=True, kw_only=True)
class ReleaseRefused(Record):
    SCHEMA: ClassVar[str] = "test.ReleaseRefused"
    reservation_id: str


@dataclass(frozen=True, kw_only=True)
class AuthorizePayment(Record):
    SCHEMA: ClassVar[str] = "test.AuthorizePayment"
    order_id: str
    amount: Decimal


@dataclass(frozen=True, kw_only=True)
class PaymentAuthorized(Record):
    SCHEMA: ClassVar[str] = "test.PaymentAuthorized"
    order_id: str
    authorization_id: str


@dataclass(frozen=True, kw_only=True)
class PaymentDeclined(Record):
    SCHEMA: ClassVar[str] = "test.PaymentDeclined"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class GatewayBusy(Record):
    SCHEMA: ClassVar[str] = "test.GatewayBusy"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class VoidPayment(Record):
    SCHEMA: ClassVar[str] = "test.VoidPayment"
    authorization_id: str


@dataclass(frozen=True, kw_only=True)
class PaymentVoided(Record):
    SCHEMA: ClassVar[str] = "test.PaymentVoided"
    authorization_id: str


@dataclass(frozen=True, kw_only=True)
class ScheduleShipment(Record):
    SCHEMA: ClassVar[str] = "test.ScheduleShipment"
    order_id: str
    express: bool


@dataclass(frozen=True, kw_only=True)
class ShipmentScheduled(Record):
    SCHEMA: ClassVar[str] = "test.ShipmentScheduled"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class ShipmentRejected(Record):
    SCHEMA: ClassVar[str] = "test.ShipmentRejected"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class NotifyCustomer(Record):
    SCHEMA: ClassVar[str] = "test.NotifyCustomer"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class CustomerNotified(Record):
    SCHEMA: ClassVar[str] = "test.CustomerNotified"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class NotifyFailed(Record):
    SCHEMA: ClassVar[str] = "test.NotifyFailed"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class ParcelDelivered(Record):
    """Published by shipping on its own (choreography)."""

    SCHEMA: ClassVar[str] = "test.ParcelDelivered"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class OrderFulfilled(Record):
    SCHEMA: ClassVar[str] = "test.OrderFulfilled"
    order_id: str


@dataclass(frozen=True, kw_only=True)
class OrderCancelled(Record):
    SCHEMA: ClassVar[str] = "test.OrderCancelled"
    order_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class CommandFailed(Record):
    """Like the participants' generic failure reply: names the command it answers."""

    SCHEMA: ClassVar[str] = "test.CommandFailed"
    command_id: str
    reason: str
    retryable: bool


@dataclass(frozen=True, kw_only=True)
class OrderData:
    order_id: str
    amount: Decimal
    express: bool = False
    reservation_id: str | None = None
    authorization_id: str | None = None
    placed_at: datetime | None = None
    tags: tuple[str, ...] = ()


def init_order(e: OrderPlaced) -> OrderData:
    return OrderData(order_id=e.order_id, amount=e.amount, express=e.express)


def with_reservation(d: OrderData, r: StockReserved) -> OrderData:
    return replace(d, reservation_id=r.reservation_id)


def with_authorization(d: OrderData, r: PaymentAuthorized) -> OrderData:
    return replace(d, authorization_id=r.authorization_id)


def reserve(d: OrderData) -> ReserveStock:
    return ReserveStock(order_id=d.order_id)


def release(d: OrderData) -> ReleaseStock:
    return ReleaseStock(reservation_id=d.reservation_id or "?")


def authorize(d: OrderData) -> AuthorizePayment:
    return AuthorizePayment(order_id=d.order_id, amount=d.amount)


def void(d: OrderData) -> VoidPayment:
    return VoidPayment(authorization_id=d.authorization_id or "?")


def ship(d: OrderData) -> ScheduleShipment:
    return ScheduleShipment(order_id=d.order_id, express=d.express)


def notify(d: OrderData) -> NotifyCustomer:
    return NotifyCustomer(order_id=d.order_id)


def fulfilled(d: OrderData) -> OrderFulfilled:
    return OrderFulfilled(order_id=d.order_id)


def cancelled(d: OrderData) -> OrderCancelled:
    return OrderCancelled(order_id=d.order_id, reason="compensated")


def order_key(d: OrderData) -> str:
    return d.order_id


FAST = RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=1), jitter=0.5)


def reserve_step() -> Step[OrderData]:
    return Step(
        name="reserve_stock",
        command=Command(ReserveStock, "inventory", reserve),
        success=(On(StockReserved, with_reservation, reads=("reservation_id",)),),
        failure=(On(StockUnavailable),),
        compensation=Compensation(
            command=Command(ReleaseStock, "inventory", release),
            success=(StockReleased,),
            failure=(ReleaseRefused,),
            retry=RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=2)),
        ),
        retry=RetryPolicy(max_attempts=2),
    )


def payment_step() -> Step[OrderData]:
    return Step(
        name="authorize_payment",
        command=Command(AuthorizePayment, "payments", authorize),
        success=(On(PaymentAuthorized, with_authorization),),
        failure=(On(PaymentDeclined), On(GatewayBusy)),
        compensation=Compensation(
            command=Command(VoidPayment, "payments", void),
            success=(PaymentVoided,),
            retry=RetryPolicy(max_attempts=4),
        ),
        retry=RetryPolicy(max_attempts=3, retry_on=(GatewayBusy,)),
    )


def shipment_step() -> Step[OrderData]:
    return Step(
        name="schedule_shipment",
        kind=StepKind.PIVOT,
        command=Command(ScheduleShipment, "shipping", ship),
        success=(On(ShipmentScheduled),),
        failure=(On(ShipmentRejected),),
    )


def notify_step() -> Step[OrderData]:
    return Step(
        name="notify_customer",
        kind=StepKind.RETRIABLE,
        command=Command(NotifyCustomer, "mail", notify),
        success=(On(CustomerNotified),),
        failure=(On(NotifyFailed),),
        retry=RetryPolicy(max_attempts=4, initial_backoff=timedelta(seconds=5)),
    )


def order_saga(**changes: object) -> Saga[OrderData]:
    """Reserve -> pay -> ship (pivot) -> notify (retriable) -> OrderFulfilled."""
    fields: dict[str, object] = {
        "name": "order_fulfilment",
        "version": 1,
        "data": OrderData,
        "starts": (Start(OrderPlaced, "order:{order_id}", init_order),),
        "steps": (reserve_step(), payment_step(), shipment_step(), notify_step()),
        "deadline": timedelta(hours=1),
        "on_completed": Emit(OrderFulfilled, "orders.events", fulfilled, key=order_key),
        "on_compensated": Emit(OrderCancelled, "orders.events", cancelled, key=order_key),
        "example": OrderData(order_id="o-1", amount=Decimal("1")),
    }
    fields.update(changes)
    return Saga(**fields)  # type: ignore[arg-type]  # test factory: fields checked at run time


def parallel_saga() -> Saga[OrderData]:
    """Reserve and pay in parallel, then await the parcel's delivery (choreography)."""
    return Saga(
        name="parallel_order",
        version=1,
        data=OrderData,
        starts=(Start(OrderPlaced, "order:{order_id}", init_order),),
        steps=(
            Parallel(name="prepare", branches=(reserve_step(), payment_step())),
            Await(
                name="delivered",
                event=On(ParcelDelivered),
                compensation=None,
                kind=StepKind.PIVOT,
                timeout=timedelta(minutes=10),
            ),
        ),
        on_completed=Emit(OrderFulfilled, "orders.events", fulfilled, key=order_key),
        on_compensated=Emit(OrderCancelled, "orders.events", cancelled, key=order_key),
    )


def with_gift(d: OrderData, r: StockReserved) -> OrderData:
    return replace(d, tags=(*d.tags, r.reservation_id))


def release_gift(d: OrderData) -> ReleaseStock:
    return ReleaseStock(reservation_id=d.tags[0] if d.tags else "?")


def gift_step() -> Step[OrderData]:
    """Like `reserve_step`: the same command, replies and compensation types."""
    return Step(
        name="reserve_gift",
        command=Command(ReserveStock, "inventory", reserve),
        success=(On(StockReserved, with_gift, reads=("reservation_id",)),),
        failure=(On(StockUnavailable),),
        compensation=Compensation(
            command=Command(ReleaseStock, "inventory", release_gift),
            success=(StockReleased,),
            failure=(ReleaseRefused,),
        ),
    )


def twin_saga() -> Saga[OrderData]:
    """The order and a gift reserved in parallel (one command type, one reply type for
    both: replies name their command), then pay, ship (pivot), notify."""
    return order_saga(
        name="twin_order",
        steps=(
            Parallel(name="reserve", branches=(reserve_step(), gift_step())),
            payment_step(),
            shipment_step(),
            notify_step(),
        ),
    )


ALL_TYPES: tuple[type[Record], ...] = (
    OrderPlaced,
    ReserveStock,
    StockReserved,
    StockUnavailable,
    ReleaseStock,
    StockReleased,
    ReleaseRefused,
    AuthorizePayment,
    PaymentAuthorized,
    PaymentDeclined,
    GatewayBusy,
    VoidPayment,
    PaymentVoided,
    ScheduleShipment,
    ShipmentScheduled,
    ShipmentRejected,
    NotifyCustomer,
    CustomerNotified,
    NotifyFailed,
    ParcelDelivered,
    OrderFulfilled,
    OrderCancelled,
    CommandFailed,
)


def envelope(
    payload: Record, mid: str, saga_id: str | None = "order:o-1", at: datetime = T0
) -> Envelope:
    return Envelope(
        id=mid, type=payload.SCHEMA, source="/test", time=at, payload=payload, saga_id=saga_id
    )


def placed(order_id: str = "o-1", amount: str = "10.00") -> Envelope:
    event = OrderPlaced(order_id=order_id, amount=Decimal(amount))
    return envelope(event, f"placed-{order_id}", saga_id=None)
