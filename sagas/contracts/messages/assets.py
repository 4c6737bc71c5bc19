"""Messages of the assets participant: commands, replies, and its ``assets.events``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sagas.contracts.record import Record


@dataclass(frozen=True, kw_only=True)
class ProvisionLaptop(Record):
    """Provision a laptop for an employee.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        model: The laptop model to provision.
    """

    SCHEMA: ClassVar[str] = "assets.ProvisionLaptop"

    employee_id: str
    model: str


@dataclass(frozen=True, kw_only=True)
class ReclaimLaptop(Record):
    """Reclaim a laptop (compensation of ProvisionLaptop).

    Attributes:
        employee_id: Identifier of the employee (the business key).
        asset_tag: The laptop to reclaim.
    """

    SCHEMA: ClassVar[str] = "assets.ReclaimLaptop"

    employee_id: str
    asset_tag: str


@dataclass(frozen=True, kw_only=True)
class LaptopProvisioned(Record):
    """A laptop is assigned to the employee and on its way.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        asset_tag: Inventory tag of the laptop.
        model: The laptop model.
    """

    SCHEMA: ClassVar[str] = "assets.LaptopProvisioned"

    employee_id: str
    asset_tag: str
    model: str


@dataclass(frozen=True, kw_only=True)
class LaptopUnavailable(Record):
    """No laptop of that model is in stock.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        model: The model that is out of stock.
    """

    SCHEMA: ClassVar[str] = "assets.LaptopUnavailable"

    employee_id: str
    model: str


@dataclass(frozen=True, kw_only=True)
class LaptopReclaimed(Record):
    """A laptop was reclaimed.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        asset_tag: The reclaimed laptop.
    """

    SCHEMA: ClassVar[str] = "assets.LaptopReclaimed"

    employee_id: str
    asset_tag: str


@dataclass(frozen=True, kw_only=True)
class LaptopDelivered(Record):
    """A laptop reached its employee (choreography event).

    Attributes:
        employee_id: Identifier of the employee (the business key).
        asset_tag: The delivered laptop.
        delivered_at: When it was delivered.
    """

    SCHEMA: ClassVar[str] = "assets.LaptopDelivered"

    employee_id: str
    asset_tag: str
    delivered_at: datetime
