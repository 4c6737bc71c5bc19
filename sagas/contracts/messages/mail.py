"""Messages of the mail participant: commands on ``mail.commands`` and its replies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from sagas.contracts.record import Record


@dataclass(frozen=True, kw_only=True)
class CreateMailbox(Record):
    """Create a mailbox for an employee.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        username: The directory username the address derives from.
    """

    SCHEMA: ClassVar[str] = "mail.CreateMailbox"

    employee_id: str
    username: str


@dataclass(frozen=True, kw_only=True)
class DeleteMailbox(Record):
    """Delete a mailbox (compensation of CreateMailbox).

    Attributes:
        employee_id: Identifier of the employee (the business key).
        address: The mailbox address to delete.
    """

    SCHEMA: ClassVar[str] = "mail.DeleteMailbox"

    employee_id: str
    address: str


@dataclass(frozen=True, kw_only=True)
class MailboxCreated(Record):
    """A mailbox exists for the employee.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        address: The mailbox address.
    """

    SCHEMA: ClassVar[str] = "mail.MailboxCreated"

    employee_id: str
    address: str


@dataclass(frozen=True, kw_only=True)
class MailboxRejected(Record):
    """The mail system refused to create the mailbox.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        reason: Why, for people.
    """

    SCHEMA: ClassVar[str] = "mail.MailboxRejected"

    employee_id: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class MailboxDeleted(Record):
    """A mailbox was deleted.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        address: The deleted mailbox address.
    """

    SCHEMA: ClassVar[str] = "mail.MailboxDeleted"

    employee_id: str
    address: str
