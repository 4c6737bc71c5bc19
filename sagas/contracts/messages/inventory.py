"""Messages of the inventory participant: commands on ``inventory.commands`` and its replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sagas.contracts.record import Record


@dataclass(frozen=True, kw_only=True)
class StockItem:
    """A quantity of one product.

    Attributes:
        sku: Stock keeping unit of the product.
        quantity: How many units (positive).
    """

    sku: str
    quantity: int


@dataclass(frozen=True, kw_only=True)
class ReserveStock(Record):
    """Reserve stock for every line of an order.

    Attributes:
        order_id: Identifier of the order (the business key).
        items: The products and quantities to reserve.
    """

    SCHEMA: ClassVar[str] = "inventory.ReserveStock"

    order_id: str
    items: tuple[StockItem, ...]


@dataclass(frozen=True, kw_only=True)
class ReleaseStock(Record):
    """Release a reservation (compensation of ReserveStock).

    Attributes:
        order_id: Identifier of the order (the business key).
        reservation_id: The reservation to release.
    """

    SCHEMA: ClassVar[str] = "inventory.ReleaseStock"

    order_id: str
    reservation_id: str


@dataclass(frozen=True, kw_only=True)
class StockReserved(Record):
    """The stock for an order is reserved.

    Attributes:
        order_id: Identifier of the order (the business key).
        reservation_id: Identifier of the reservation, needed to release it.
    """

    SCHEMA: ClassVar[str] = "inventory.StockReserved"

    order_id: str
    reservation_id: str


@dataclass(frozen=True, kw_only=True)
class StockUnavailable(Record):
    """Not enough stock of a product to reserve the order.

    Attributes:
        order_id: Identifier of the order (the business key).
        sku: The first product that is short.
        requested: How many units were requested.
        available: How many units are available.
    """

    SCHEMA: ClassVar[str] = "inventory.StockUnavailable"

    order_id: str
    sku: str
    requested: int
    available: int


@dataclass(frozen=True, kw_only=True)
class StockReleased(Record):
    """A reservation was released.

    Attributes:
        order_id: Identifier of the order (the business key).
        reservation_id: The released reservation.
    """

    SCHEMA: ClassVar[str] = "inventory.StockReleased"

    order_id: str
    reservation_id: str
