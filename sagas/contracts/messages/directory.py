"""Messages of the directory participant: commands on ``directory.commands`` and its replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sagas.contracts.record import Record


@dataclass(frozen=True, kw_only=True)
class CreateAccount(Record):
    """Create a directory account for a new employee.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        full_name: The employee's full name.
    """

    SCHEMA: ClassVar[str] = "directory.CreateAccount"

    employee_id: str
    full_name: str


@dataclass(frozen=True, kw_only=True)
class DisableAccount(Record):
    """Disable an account (compensation of CreateAccount).

    Attributes:
        employee_id: Identifier of the employee (the business key).
        account_id: The account to disable.
    """

    SCHEMA: ClassVar[str] = "directory.DisableAccount"

    employee_id: str
    account_id: str


@dataclass(frozen=True, kw_only=True)
class AccountCreated(Record):
    """A directory account exists for the employee.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        account_id: Identifier of the account.
        username: The login name.
    """

    SCHEMA: ClassVar[str] = "directory.AccountCreated"

    employee_id: str
    account_id: str
    username: str


@dataclass(frozen=True, kw_only=True)
class AccountRejected(Record):
    """The directory refused to create the account.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        reason: Why, for people.
    """

    SCHEMA: ClassVar[str] = "directory.AccountRejected"

    employee_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class AccountDisabled(Record):
    """An account was disabled.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        account_id: The disabled account.
    """

    SCHEMA: ClassVar[str] = "directory.AccountDisabled"

    employee_id: str
    account_id: str
