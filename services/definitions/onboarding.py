"""The employee onboarding saga: account, laptop, then mailbox, licences and cloud access.

``EmployeeHired`` (on ``hr.events``) starts one instance per employee, saga id
``employee:{employee_id}``. The stages run in order::

    create_account    CreateAccount    -> AccountCreated | AccountRejected
                                          undo: DisableAccount
    provision_laptop  ProvisionLaptop  -> LaptopProvisioned | LaptopUnavailable
                                          undo: ReclaimLaptop
    laptop_delivered  awaits LaptopDelivered on assets.events (choreography)
    equip, in parallel:
      create_mailbox  CreateMailbox    -> MailboxCreated | MailboxRejected
                                          undo: DeleteMailbox
      assign_licences AssignLicences   -> LicencesAssigned | LicencesUnavailable
                                          undo: UnassignLicences (roles with licences only)
      grant_access    GrantCloudAccess -> CloudAccessGranted | CloudAccessDenied
                                          undo: RevokeCloudAccess (roles with cloud roles only)

What a role gets is data (`PRODUCTS`, `CLOUD_ROLES`, `LAPTOPS`): a role without
products or cloud roles skips that branch. Every step can be undone, so any failure
undoes the completed steps in reverse order (the ``equip`` branches together) and
publishes ``OnboardingCancelled``; when
every step succeeds, ``EmployeeOnboarded`` is published. Both go to ``hr.events``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

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
from services.messages.access import (
    CloudAccessDenied,
    CloudAccessGranted,
    CloudAccessRevoked,
    GrantCloudAccess,
    RevokeCloudAccess,
)
from services.messages.assets import (
    LaptopDelivered,
    LaptopProvisioned,
    LaptopReclaimed,
    LaptopUnavailable,
    ProvisionLaptop,
    ReclaimLaptop,
)
from services.messages.directory import (
    AccountCreated,
    AccountDisabled,
    AccountRejected,
    CreateAccount,
    DisableAccount,
)
from services.messages.hr import EmployeeHired, EmployeeOnboarded, OnboardingCancelled, Role
from services.messages.licensing import (
    AssignLicences,
    LicencesAssigned,
    LicencesUnassigned,
    LicencesUnavailable,
    UnassignLicences,
)
from services.messages.mail import (
    CreateMailbox,
    DeleteMailbox,
    MailboxCreated,
    MailboxDeleted,
    MailboxRejected,
)

EVENTS = "hr.events"

LAPTOPS: Mapping[Role, str] = {
    Role.ENGINEER: "MBP-16",
    Role.SALES: "MBA-13",
    Role.SUPPORT: "MBA-13",
    Role.MANAGER: "MBA-13",
}
"""The standard laptop model per role (a hire may ask for another)."""

PRODUCTS: Mapping[Role, tuple[str, ...]] = {
    Role.ENGINEER: ("IDE", "GITHUB"),
    Role.SALES: ("CRM",),
    Role.SUPPORT: (),
    Role.MANAGER: ("CRM", "BI"),
}
"""The software licences per role; none: the step is skipped."""

CLOUD_ROLES: Mapping[Role, tuple[str, ...]] = {
    Role.ENGINEER: ("developer", "log-reader"),
    Role.SALES: (),
    Role.SUPPORT: ("log-reader",),
    Role.MANAGER: ("billing-viewer",),
}
"""The cloud IAM roles per role; none: the step is skipped."""

# A participant that did the work but answered slowly replays its stored reply when the
# same command id is sent again, so resending on a timeout is always safe.
FORWARD_RETRY = RetryPolicy(
    max_attempts=3, initial_backoff=timedelta(seconds=1), max_backoff=timedelta(seconds=10)
)
UNDO_RETRY = RetryPolicy(
    max_attempts=8, initial_backoff=timedelta(seconds=1), max_backoff=timedelta(minutes=1)
)


@dataclass(frozen=True, kw_only=True)
class OnboardingData:
    """What the saga knows about one new employee, filled in as the steps reply."""

    employee_id: str
    full_name: str
    role: Role
    start_date: date
    hired_at: datetime
    laptop_model: str
    account_id: str | None = None
    username: str | None = None
    asset_tag: str | None = None
    delivered_at: datetime | None = None
    email: str | None = None
    products: tuple[str, ...] = ()
    cloud_roles: tuple[str, ...] = ()
    failure: str | None = None

    @staticmethod
    def from_event(event: EmployeeHired) -> OnboardingData:
        """The initial data of the saga an ``EmployeeHired`` starts."""
        return OnboardingData(
            employee_id=event.employee_id,
            full_name=event.full_name,
            role=event.role,
            start_date=event.start_date,
            hired_at=event.hired_at,
            laptop_model=event.laptop_model or LAPTOPS[event.role],
        )


# -- conditions ----------------------------------------------------------------------


def needs_licences(d: OnboardingData) -> bool:
    return bool(PRODUCTS[d.role])


def needs_cloud_access(d: OnboardingData) -> bool:
    return bool(CLOUD_ROLES[d.role])


# -- commands ------------------------------------------------------------------------


def create_account(d: OnboardingData) -> CreateAccount:
    return CreateAccount(employee_id=d.employee_id, full_name=d.full_name)


def disable_account(d: OnboardingData) -> DisableAccount:
    return DisableAccount(employee_id=d.employee_id, account_id=d.account_id or "")


def provision_laptop(d: OnboardingData) -> ProvisionLaptop:
    return ProvisionLaptop(employee_id=d.employee_id, model=d.laptop_model)


def reclaim_laptop(d: OnboardingData) -> ReclaimLaptop:
    return ReclaimLaptop(employee_id=d.employee_id, asset_tag=d.asset_tag or "")


def create_mailbox(d: OnboardingData) -> CreateMailbox:
    return CreateMailbox(employee_id=d.employee_id, username=d.username or "")


def delete_mailbox(d: OnboardingData) -> DeleteMailbox:
    return DeleteMailbox(employee_id=d.employee_id, address=d.email or "")


def assign_licences(d: OnboardingData) -> AssignLicences:
    return AssignLicences(employee_id=d.employee_id, role=d.role, products=PRODUCTS[d.role])


# A compensation also runs for a step that may have been applied without a reply (it
# timed out): then the data lacks the reply, so undo what the command asked for.


def unassign_licences(d: OnboardingData) -> UnassignLicences:
    return UnassignLicences(employee_id=d.employee_id, products=d.products or PRODUCTS[d.role])


def grant_access(d: OnboardingData) -> GrantCloudAccess:
    return GrantCloudAccess(employee_id=d.employee_id, roles=CLOUD_ROLES[d.role])


def revoke_access(d: OnboardingData) -> RevokeCloudAccess:
    return RevokeCloudAccess(employee_id=d.employee_id, roles=d.cloud_roles or CLOUD_ROLES[d.role])


# -- replies and events --------------------------------------------------------------


def with_account(d: OnboardingData, r: AccountCreated) -> OnboardingData:
    return replace(d, account_id=r.account_id, username=r.username)


def account_rejected(d: OnboardingData, r: AccountRejected) -> OnboardingData:
    return replace(d, failure=f"account rejected: {r.reason}")


def with_laptop(d: OnboardingData, r: LaptopProvisioned) -> OnboardingData:
    return replace(d, asset_tag=r.asset_tag)


def no_laptop(d: OnboardingData, r: LaptopUnavailable) -> OnboardingData:
    return replace(d, failure=f"no laptop: {r.model} is out of stock")


def delivered(d: OnboardingData, e: LaptopDelivered) -> OnboardingData:
    return replace(d, delivered_at=e.delivered_at)


def with_mailbox(d: OnboardingData, r: MailboxCreated) -> OnboardingData:
    return replace(d, email=r.address)


def mailbox_rejected(d: OnboardingData, r: MailboxRejected) -> OnboardingData:
    return replace(d, failure=f"mailbox rejected: {r.reason}")


def with_licences(d: OnboardingData, r: LicencesAssigned) -> OnboardingData:
    return replace(d, products=r.products)


def licences_short(d: OnboardingData, r: LicencesUnavailable) -> OnboardingData:
    return replace(d, failure=f"no free seat: {r.product}")


def with_access(d: OnboardingData, r: CloudAccessGranted) -> OnboardingData:
    return replace(d, cloud_roles=r.roles)


def access_denied(d: OnboardingData, r: CloudAccessDenied) -> OnboardingData:
    return replace(d, failure=f"cloud access denied: {r.reason}")


# -- end events ----------------------------------------------------------------------
# Builders read no clock: taking two arguments, they get the time of the decision that
# ends the saga (as in order fulfilment).


def employee_onboarded(d: OnboardingData, now: datetime) -> EmployeeOnboarded:
    return EmployeeOnboarded(
        employee_id=d.employee_id,
        username=d.username or "",
        email=d.email or "",
        asset_tag=d.asset_tag or "",
        onboarded_at=now,
    )


def onboarding_cancelled(d: OnboardingData, now: datetime) -> OnboardingCancelled:
    return OnboardingCancelled(
        employee_id=d.employee_id, reason=d.failure or "onboarding failed", cancelled_at=now
    )


def employee_key(d: OnboardingData) -> str:
    return d.employee_id


EXAMPLE = OnboardingData(
    employee_id="e-1",
    full_name="Ada Lovelace",
    role=Role.ENGINEER,
    start_date=date(2030, 2, 1),
    hired_at=datetime(2030, 1, 1, tzinfo=UTC),
    laptop_model="MBP-16",
    account_id="acc-1",
    username="ada.lovelace",
    asset_tag="MBP-16-0001",
    email="ada.lovelace@example.com",
    products=("IDE", "GITHUB"),
    cloud_roles=("developer", "log-reader"),
)


def _undo(
    command: Command[OnboardingData, Any], success: type[Any]
) -> Compensation[OnboardingData]:
    return Compensation(command=command, success=(success,), retry=UNDO_RETRY)


EQUIP = Parallel(
    name="equip",
    branches=(
        Step(
            name="create_mailbox",
            command=Command(CreateMailbox, "mail", create_mailbox),
            success=(On(MailboxCreated, with_mailbox, reads=("address",)),),
            failure=(On(MailboxRejected, mailbox_rejected, reads=("reason",)),),
            compensation=_undo(Command(DeleteMailbox, "mail", delete_mailbox), MailboxDeleted),
            retry=FORWARD_RETRY,
        ),
        Step(
            name="assign_licences",
            command=Command(AssignLicences, "licensing", assign_licences),
            success=(On(LicencesAssigned, with_licences, reads=("products",)),),
            failure=(On(LicencesUnavailable, licences_short, reads=("product",)),),
            compensation=_undo(
                Command(UnassignLicences, "licensing", unassign_licences), LicencesUnassigned
            ),
            retry=FORWARD_RETRY,
            when=needs_licences,
        ),
        Step(
            name="grant_access",
            command=Command(GrantCloudAccess, "access", grant_access),
            success=(On(CloudAccessGranted, with_access, reads=("roles",)),),
            failure=(On(CloudAccessDenied, access_denied, reads=("reason",)),),
            compensation=_undo(
                Command(RevokeCloudAccess, "access", revoke_access), CloudAccessRevoked
            ),
            retry=FORWARD_RETRY,
            when=needs_cloud_access,
        ),
    ),
)

ONBOARDING: Saga[OnboardingData] = Saga(
    name="onboarding",
    version=1,
    data=OnboardingData,
    starts=(
        Start(
            EmployeeHired,
            "employee:{employee_id}",
            OnboardingData.from_event,
            reads=("full_name", "role", "start_date", "hired_at", "laptop_model"),
        ),
    ),
    steps=(
        Step(
            name="create_account",
            command=Command(CreateAccount, "directory", create_account),
            success=(On(AccountCreated, with_account, reads=("account_id", "username")),),
            failure=(On(AccountRejected, account_rejected, reads=("reason",)),),
            compensation=_undo(
                Command(DisableAccount, "directory", disable_account), AccountDisabled
            ),
            retry=FORWARD_RETRY,
        ),
        Step(
            name="provision_laptop",
            command=Command(ProvisionLaptop, "assets", provision_laptop),
            success=(On(LaptopProvisioned, with_laptop, reads=("asset_tag",)),),
            failure=(On(LaptopUnavailable, no_laptop, reads=("model",)),),
            compensation=_undo(Command(ReclaimLaptop, "assets", reclaim_laptop), LaptopReclaimed),
            retry=FORWARD_RETRY,
        ),
        # Nothing to undo here: reclaiming the laptop (the step before) covers it.
        Await(
            name="laptop_delivered",
            event=On(LaptopDelivered, delivered, reads=("delivered_at",)),
            saga_id="employee:{employee_id}",
            kind=StepKind.COMPENSATABLE,
            timeout=timedelta(days=3),
        ),
        EQUIP,
    ),
    deadline=timedelta(days=7),
    on_completed=Emit(EmployeeOnboarded, EVENTS, employee_onboarded, key=employee_key),
    on_compensated=Emit(OnboardingCancelled, EVENTS, onboarding_cancelled, key=employee_key),
    example=EXAMPLE,
)
"""The employee onboarding saga definition."""
