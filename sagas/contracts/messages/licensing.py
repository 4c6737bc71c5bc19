"""Messages of the licensing participant: commands on ``licensing.commands`` and its replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sagas.contracts.messages.hr import Role
from sagas.contracts.record import Record


@dataclass(frozen=True, kw_only=True)
class AssignLicences(Record):
    """Assign the software licences a role needs.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        role: The employee's role.
        products: The products to license.
    """

    SCHEMA: ClassVar[str] = "licensing.AssignLicences"

    employee_id: str
    role: Role
    products: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class UnassignLicences(Record):
    """Take licences back (compensation of AssignLicences).

    Attributes:
        employee_id: Identifier of the employee (the business key).
        products: The products to unassign.
    """

    SCHEMA: ClassVar[str] = "licensing.UnassignLicences"

    employee_id: str
    products: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class LicencesAssigned(Record):
    """The licences are assigned.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        products: The products now licensed to the employee.
    """

    SCHEMA: ClassVar[str] = "licensing.LicencesAssigned"

    employee_id: str
    products: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class LicencesUnavailable(Record):
    """No free seat for a product.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        product: The first product without a free seat.
    """

    SCHEMA: ClassVar[str] = "licensing.LicencesUnavailable"

    employee_id: str
    product: str


@dataclass(frozen=True, kw_only=True)
class LicencesUnassigned(Record):
    """The licences were taken back.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        products: The products unassigned.
    """

    SCHEMA: ClassVar[str] = "licensing.LicencesUnassigned"

    employee_id: str
    products: tuple[str, ...]
