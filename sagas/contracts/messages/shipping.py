"""Messages of the shipping participant: commands on ``shipping.commands`` and its replies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import ClassVar

from sagas.contracts.record import Record


@dataclass(frozen=True, kw_only=True)
class Address:
    """Where a shipment goes.

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
class ShipmentItem:
    """A quantity of one product in a parcel.

    Attributes:
        sku: Stock keeping unit of the product.
        quantity: How many units (positive).
    """

    sku: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class ScheduleShipment(Record):
    """Schedule the shipment of an order.

    Attributes:
        order_id: Identifier of the order (the business key).
        address: Where to ship.
        items: What to ship.
    """

    SCHEMA: ClassVar[str] = "shipping.ScheduleShipment"

    order_id: str
    address: Address
    items: tuple[ShipmentItem, ...]


@dataclass(frozen=True, kw_only=True)
class CancelShipment(Record):
    """Cancel a scheduled shipment (compensation).

    Attributes:
        order_id: Identifier of the order (the business key).
        shipment_id: The shipment to cancel.
    """

    SCHEMA: ClassVar[str] = "shipping.CancelShipment"

    order_id: str
    shipment_id: str


@dataclass(frozen=True, kw_only=True)
class ShipmentScheduled(Record):
    """A shipment is scheduled with a carrier.

    Attributes:
        order_id: Identifier of the order (the business key).
        shipment_id: Identifier of the shipment, needed to cancel it.
        carrier: The carrier that will deliver it.
        estimated_delivery: Expected delivery day, when the carrier gave one.
    """

    SCHEMA: ClassVar[str] = "shipping.ShipmentScheduled"

    order_id: str
    shipment_id: str
    carrier: str
    estimated_delivery: date | None = None


@dataclass(frozen=True, kw_only=True)
class ShipmentFailed(Record):
    """No shipment could be scheduled.

    Attributes:
        order_id: Identifier of the order (the business key).
        reason: Why, for people.
    """

    SCHEMA: ClassVar[str] = "shipping.ShipmentFailed"

    order_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class ShipmentCancelled(Record):
    """A shipment was cancelled.

    Attributes:
        order_id: Identifier of the order (the business key).
        shipment_id: The cancelled shipment.
    """

    SCHEMA: ClassVar[str] = "shipping.ShipmentCancelled"

    order_id: str
    shipment_id: str
