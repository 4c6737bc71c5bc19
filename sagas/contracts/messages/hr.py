"""Messages of the hr domain: events on ``hr.events``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import ClassVar

from sagas.contracts.record import Record


class Role(StrEnum):
    """The job role of an employee; it decides licences and cloud access."""

    ENGINEER = "ENGINEER"
    SALES = "SALES"
    SUPPORT = "SUPPORT"
    MANAGER = "MANAGER"


@dataclass(frozen=True, kw_only=True)
class EmployeeHired(Record):
    """An employee was hired; starts the onboarding saga.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        full_name: The employee's full name.
        role: The employee's role.
        start_date: First working day.
        hired_at: When the hire was recorded.
        laptop_model: The laptop model asked for; none: the role's standard model.
    """

    SCHEMA: ClassVar[str] = "hr.EmployeeHired"

    employee_id: str
    full_name: str
    role: Role
    start_date: date
    hired_at: datetime
    laptop_model: str | None = None


@dataclass(frozen=True, kw_only=True)
class EmployeeOnboarded(Record):
    """Every onboarding step is done for an employee.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        username: The directory username.
        email: The mailbox address.
        asset_tag: The laptop handed out.
        onboarded_at: When onboarding completed.
    """

    SCHEMA: ClassVar[str] = "hr.EmployeeOnboarded"

    employee_id: str
    username: str
    email: str
    asset_tag: str
    onboarded_at: datetime


@dataclass(frozen=True, kw_only=True)
class OnboardingCancelled(Record):
    """Onboarding was given up and its completed steps undone.

    Attributes:
        employee_id: Identifier of the employee (the business key).
        reason: Why, for people.
        cancelled_at: When onboarding was cancelled.
    """

    SCHEMA: ClassVar[str] = "hr.OnboardingCancelled"

    employee_id: str
    reason: str
    cancelled_at: datetime
