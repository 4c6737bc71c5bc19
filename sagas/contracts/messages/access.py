"""Messages of the cloud access participant: commands on ``access.commands`` and its replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sagas.contracts.record import Record


@dataclass(frozen=True, kw_only=True)
class GrantCloudAccess(Record):
    """Grant cloud roles to an employee.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        roles: The cloud IAM roles to grant.
    """

    SCHEMA: ClassVar[str] = "access.GrantCloudAccess"

    employee_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class RevokeCloudAccess(Record):
    """Revoke cloud roles (compensation of GrantCloudAccess).

    Attributes:
        employee_id: Identifier of the employee (the business key).
        roles: The cloud IAM roles to revoke.
    """

    SCHEMA: ClassVar[str] = "access.RevokeCloudAccess"

    employee_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class CloudAccessGranted(Record):
    """The cloud roles are granted.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        roles: The granted roles.
    """

    SCHEMA: ClassVar[str] = "access.CloudAccessGranted"

    employee_id: str
    roles: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class CloudAccessDenied(Record):
    """The cloud provider refused the grant.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        reason: Why, for people.
    """

    SCHEMA: ClassVar[str] = "access.CloudAccessDenied"

    employee_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class CloudAccessRevoked(Record):
    """The cloud roles were revoked.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        roles: The revoked roles.
    """

    SCHEMA: ClassVar[str] = "access.CloudAccessRevoked"

    employee_id: str
    roles: tuple[str, ...]
