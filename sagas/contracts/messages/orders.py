"""Messages of the orders domain: events on ``orders.events``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import ClassVar

from sagas.contracts.record import Record


@dataclass(frozen=True, kw_only=True)
class OrderLine:
    """One line of an order.

    Attributes:
        sku: Stock keeping unit of the product.
        quantity: How many units were ordered (positive).
        unit_price: Price of one unit, in the order's currency.
    """

    sku: str
    quantity: int
    unit_price: Decimal


@dataclass(frozen=True, kw_only=True)
class Address:
    """A postal address.

    Attributes:
        recipient: Name of the person receiving the parcel.
        line1: Street and number.
        line2: Optional second address line (building, floor).
        city: City or town.
        postal_code: Postal code.
        country: ISO 3166-1 alpha-2 country code, e.g. DE.
    """

    recipient: str
    line1: str
    line2: str | None = None
    city: str
    postal_code: str
    country: str


@dataclass(frozen=True, kw_only=True)
class OrderPlaced(Record):
    """A customer placed an order; starts the order fulfilment saga.

    Attributes:
        order_id: Identifier of the order (the business key).
        customer_id: Identifier of the customer who placed the order.
        items: The ordered lines, at least one.
        total: Total amount to pay, in the order's currency.
        currency: ISO 4217 currency code, e.g. EUR.
        shipping_address: Where the order is shipped.
        placed_at: When the customer placed the order.
    """

    SCHEMA: ClassVar[str] = "orders.OrderPlaced"

    order_id: str
    customer_id: str
    items: tuple[OrderLine, ...]
    total: Decimal
    currency: str
    shipping_address: Address
    placed_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderFulfilled(Record):
    """An order was paid for and its shipment scheduled.

    Attributes:
        order_id: Identifier of the order (the business key).
        shipment_id: The shipment that carries the order.
        fulfilled_at: When the order was fulfilled.
    """

    SCHEMA: ClassVar[str] = "orders.OrderFulfilled"

    order_id: str
    shipment_id: str
    fulfilled_at: datetime


@dataclass(frozen=True, kw_only=True)
class OrderCancelled(Record):
    """An order was cancelled and every completed step undone.

    Attributes:
        order_id: Identifier of the order (the business key).
        reason: Why the order was cancelled, for people.
        cancelled_at: When the order was cancelled.
    """

    SCHEMA: ClassVar[str] = "orders.OrderCancelled"

    order_id: str
    reason: str
    cancelled_at: datetime
