"""The onboarding saga against simulated participants (sagas.testing, no broker)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from sagas import SagaState, StepStatus
from sagas.contracts.record import Envelope, Record
from sagas.machine import OutgoingKind
from sagas.testing import EPOCH, Delivery, Faults, Handler, Harness, reply, script, silent
from services.definitions import all_definitions
from services.definitions.onboarding import CLOUD_ROLES, ONBOARDING, PRODUCTS
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
)

HIRED_AT = datetime(2030, 1, 1, 9, tzinfo=UTC)
DELIVERED_AT = datetime(2030, 1, 2, 15, tzinfo=UTC)


def hired(employee_id: str = "e-1", role: Role = Role.ENGINEER, **kw: Any) -> EmployeeHired:
    return EmployeeHired(
        employee_id=employee_id,
        full_name="Ada Lovelace",
        role=role,
        start_date=date(2030, 2, 1),
        hired_at=HIRED_AT,
        **kw,
    )


def delivered(employee_id: str = "e-1") -> LaptopDelivered:
    return LaptopDelivered(
        employee_id=employee_id, asset_tag="MBP-16-0001", delivered_at=DELIVERED_AT
    )


def provisioned(command: ProvisionLaptop) -> LaptopProvisioned:
    return LaptopProvisioned(
        employee_id=command.employee_id, asset_tag="MBP-16-0001", model=command.model
    )


def provision_and_deliver(harness: list[Harness[Any]]) -> Handler:
    """Provision the laptop, and have the assets service publish its delivery on its own."""

    def handle(command: ProvisionLaptop, _delivery: Delivery) -> Record:
        harness[0].publish(delivered(command.employee_id), after=timedelta(seconds=1))
        return provisioned(command)

    return handle


def participants(box: list[Harness[Any]], **overrides: Handler) -> dict[type[Record], Handler]:
    """Every command answered with success; ``overrides`` by command class name."""
    handlers: dict[type[Record], Handler] = {
        CreateAccount: reply(
            lambda c: AccountCreated(
                employee_id=c.employee_id, account_id="acc-1", username="ada.lovelace"
            )
        ),
        DisableAccount: reply(
            lambda c: AccountDisabled(employee_id=c.employee_id, account_id=c.account_id)
        ),
        ProvisionLaptop: provision_and_deliver(box),
        ReclaimLaptop: reply(
            lambda c: LaptopReclaimed(employee_id=c.employee_id, asset_tag=c.asset_tag)
        ),
        CreateMailbox: reply(
            lambda c: MailboxCreated(employee_id=c.employee_id, address=f"{c.username}@x.com")
        ),
        DeleteMailbox: reply(
            lambda c: MailboxDeleted(employee_id=c.employee_id, address=c.address)
        ),
        AssignLicences: reply(
            lambda c: LicencesAssigned(employee_id=c.employee_id, products=c.products)
        ),
        UnassignLicences: reply(
            lambda c: LicencesUnassigned(employee_id=c.employee_id, products=c.products)
        ),
        GrantCloudAccess: reply(
            lambda c: CloudAccessGranted(employee_id=c.employee_id, roles=c.roles)
        ),
        RevokeCloudAccess: reply(
            lambda c: CloudAccessRevoked(employee_id=c.employee_id, roles=c.roles)
        ),
    }
    by_name = {cls.__name__: cls for cls in handlers}
    for name, handler in overrides.items():
        handlers[by_name[name]] = handler
    return handlers


def harness_for(faults: Faults | None = None, **overrides: Handler) -> Harness[Any]:
    box: list[Harness[Any]] = []
    harness = Harness(ONBOARDING, participants(box, **overrides), faults=faults)
    box.append(harness)
    return harness


def sent(harness: Harness[Any], saga_id: str, kind: OutgoingKind) -> list[str]:
    return [m.type for m in harness.messages(saga_id, kind)]


def end_events(harness: Harness[Any], saga_id: str) -> list[object]:
    return [m.payload for m in harness.messages(saga_id, OutgoingKind.DOMAIN_EVENT)]


def test_it_is_shipped_and_routes_by_employee() -> None:
    assert ONBOARDING in all_definitions()
    assert ONBOARDING.route(hired("e-9")) == "employee:e-9"
    assert ONBOARDING.route(delivered("e-9")) == "employee:e-9"


@pytest.mark.parametrize("role", list(Role))
def test_happy_path_per_role(role: Role) -> None:
    harness = harness_for()
    saga_id = harness.start(hired(role=role))
    harness.run()

    harness.assert_completed(saga_id)
    commands = sent(harness, saga_id, OutgoingKind.COMMAND)
    assert commands[:2] == ["directory.CreateAccount", "assets.ProvisionLaptop"]
    assert ("licensing.AssignLicences" in commands) == bool(PRODUCTS[role])
    assert ("access.GrantCloudAccess" in commands) == bool(CLOUD_ROLES[role])
    assert "mail.CreateMailbox" in commands
    instance = harness.instance(saga_id)
    skipped = {s.name for s in instance.steps if s.status is StepStatus.SKIPPED}
    assert ("assign_licences" in skipped) == (not PRODUCTS[role])
    assert ("grant_access" in skipped) == (not CLOUD_ROLES[role])
    assert instance.data.products == PRODUCTS[role]
    assert instance.data.cloud_roles == CLOUD_ROLES[role]
    [event] = end_events(harness, saga_id)
    assert event == EmployeeOnboarded(
        employee_id="e-1",
        username="ada.lovelace",
        email="ada.lovelace@x.com",
        asset_tag="MBP-16-0001",
        onboarded_at=instance.ended,  # when the saga completed, not the delivery
    )
    assert instance.ended != DELIVERED_AT
    assert harness.messages(saga_id, OutgoingKind.DOMAIN_EVENT)[0].key == "e-1"


def test_the_laptop_model_follows_the_role_unless_the_hire_names_one() -> None:
    harness = harness_for()
    engineer = harness.start(hired("e-1", Role.ENGINEER))
    sales = harness.start(hired("e-2", Role.SALES))
    custom = harness.start(hired("e-3", Role.SALES, laptop_model="X1-CARBON"))
    harness.run()
    models = {
        m.saga_id: m.payload.model
        for m in harness.messages(kind=OutgoingKind.COMMAND)
        if isinstance(m.payload, ProvisionLaptop)
    }
    assert models == {engineer: "MBP-16", sales: "MBA-13", custom: "X1-CARBON"}


def test_the_equipment_waits_for_the_delivery() -> None:
    harness = harness_for(ProvisionLaptop=reply(provisioned))
    saga_id = harness.start(hired())
    harness.run(until=timedelta(hours=1))
    assert harness.state(saga_id) is SagaState.RUNNING
    assert "mail.CreateMailbox" not in sent(harness, saga_id, OutgoingKind.COMMAND)

    harness.publish(delivered())
    harness.run()
    harness.assert_completed(saga_id)


def test_empty_laptop_pool_disables_the_account() -> None:
    empty = LaptopUnavailable(employee_id="e-1", model="MBP-16")
    harness = harness_for(ProvisionLaptop=script(empty))
    saga_id = harness.start(hired())
    harness.run()

    harness.assert_compensated(saga_id, ["create_account"])
    undo = [m.payload for m in harness.messages(saga_id, OutgoingKind.COMPENSATION)]
    assert undo == [DisableAccount(employee_id="e-1", account_id="acc-1")]
    assert "mail.CreateMailbox" not in sent(harness, saga_id, OutgoingKind.COMMAND)
    [event] = end_events(harness, saga_id)
    ended = harness.instance(saga_id).ended
    assert ended is not None
    assert ended != HIRED_AT
    assert event == OnboardingCancelled(
        employee_id="e-1", reason="no laptop: MBP-16 is out of stock", cancelled_at=ended
    )


def test_licences_short_undoes_the_other_branches_then_laptop_and_account() -> None:
    short = LicencesUnavailable(employee_id="e-1", product="GITHUB")
    harness = harness_for(AssignLicences=script(short))
    saga_id = harness.start(hired(role=Role.ENGINEER))
    harness.run()

    compensated = harness.compensated_steps(saga_id)
    harness.assert_compensated(saga_id)
    assert set(compensated[:2]) == {"create_mailbox", "grant_access"}
    assert compensated[2:] == ["provision_laptop", "create_account"]
    undo = {type(m.payload) for m in harness.messages(saga_id, OutgoingKind.COMPENSATION)}
    assert UnassignLicences not in undo
    assert {DeleteMailbox, RevokeCloudAccess, ReclaimLaptop, DisableAccount} == undo
    revoke = next(
        m.payload
        for m in harness.messages(saga_id, OutgoingKind.COMPENSATION)
        if isinstance(m.payload, RevokeCloudAccess)
    )
    assert revoke.roles == CLOUD_ROLES[Role.ENGINEER]
    [event] = end_events(harness, saga_id)
    assert isinstance(event, OnboardingCancelled)
    assert event.reason == "no free seat: GITHUB"


def test_cloud_access_denied_unassigns_the_licences() -> None:
    denied = CloudAccessDenied(employee_id="e-1", reason="unknown cloud role billing-viewer")
    harness = harness_for(GrantCloudAccess=script(denied))
    saga_id = harness.start(hired(role=Role.MANAGER))
    harness.run()

    harness.assert_compensated(saga_id)
    undo = [m.payload for m in harness.messages(saga_id, OutgoingKind.COMPENSATION)]
    assert UnassignLicences(employee_id="e-1", products=("CRM", "BI")) in undo
    assert not any(isinstance(u, RevokeCloudAccess) for u in undo)


def test_a_delivery_published_before_its_step_is_kept_and_used() -> None:
    harness = harness_for(ProvisionLaptop=reply(provisioned))
    saga_id = harness.start(hired())
    harness.publish(delivered(), after=timedelta(milliseconds=1))  # before the laptop
    harness.run()

    harness.assert_completed(saga_id)
    assert harness.instance(saga_id).data.delivered_at == DELIVERED_AT


def test_duplicates_and_reordering_change_nothing() -> None:
    faults = Faults(
        latency=(timedelta(milliseconds=1), timedelta(seconds=2)), duplicate=0.5, seed=11
    )
    harness = harness_for(faults)
    ids = [harness.start(hired(f"e-{i}", list(Role)[i % 4])) for i in range(20)]
    for i in range(0, 20, 3):  # a second copy of the delivery event, later
        harness.publish(delivered(f"e-{i}"), after=timedelta(seconds=5))
    harness.run()

    for saga_id in ids:
        harness.assert_completed(saga_id)
        commands = Counter(sent(harness, saga_id, OutgoingKind.COMMAND))
        assert max(commands.values()) == 1, commands
        assert len(end_events(harness, saga_id)) == 1


def test_duplicates_during_compensation_undo_each_step_once() -> None:
    short = LicencesUnavailable(employee_id="e-1", product="BI")
    faults = Faults(duplicate=1.0, seed=3)
    harness = harness_for(faults, AssignLicences=script(short))
    saga_id = harness.start(hired(role=Role.MANAGER))
    harness.start(hired(role=Role.MANAGER))  # the same hire published twice
    harness.run()

    harness.assert_compensated(saga_id)
    undo = Counter(sent(harness, saga_id, OutgoingKind.COMPENSATION))
    assert set(undo.values()) == {1}
    assert len(end_events(harness, saga_id)) == 1


def test_a_laptop_never_delivered_is_reclaimed_after_the_wait() -> None:
    harness = harness_for(ProvisionLaptop=reply(provisioned))
    saga_id = harness.start(hired())
    harness.run()

    harness.assert_compensated(saga_id, ["provision_laptop", "create_account"])
    assert harness.now - EPOCH >= timedelta(days=3)


def late_reply(record: Record, command_id: str, at: datetime) -> Envelope:
    """The reply a participant that was paused sends once it is back."""
    return Envelope(
        id=f"{command_id}:reply",
        type=record.SCHEMA,
        source="/services/test",
        time=at,
        payload=record,
        saga_id=command_id.rsplit(":", 2)[0],
    )


def test_a_branch_paused_past_its_timeout_while_compensating_is_compensated() -> None:
    """Seen in a chaos run: the access service was paused while licences were short.
    grant_access timed out during the compensation, was marked FAILED and never undone,
    and its late success left the employee with access after the saga was COMPENSATED."""
    short = LicencesUnavailable(employee_id="e-1", product="GITHUB")
    harness = harness_for(AssignLicences=script(short), GrantCloudAccess=silent())  # paused
    saga_id = harness.start(hired(role=Role.ENGINEER))
    harness.run(until=timedelta(seconds=10))
    assert harness.state(saga_id) is SagaState.COMPENSATING
    assert harness.instance(saga_id).step("grant_access").status is StepStatus.RUNNING
    # Back after its timeout, the access service grants what it was asked.
    granted = CloudAccessGranted(employee_id="e-1", roles=CLOUD_ROLES[Role.ENGINEER])
    late = late_reply(granted, "employee:e-1:grant_access:1", harness.now)
    harness.send(saga_id, late, after=timedelta(minutes=1))
    harness.run()

    harness.assert_compensated(saga_id)
    compensated = harness.compensated_steps(saga_id)
    assert set(compensated[:2]) == {"create_mailbox", "grant_access"}  # in its stage's place
    assert compensated[2:] == ["provision_laptop", "create_account"]
    [revoke] = [
        m
        for m in harness.messages(saga_id, OutgoingKind.COMPENSATION)
        if isinstance(m.payload, RevokeCloudAccess)
    ]
    assert revoke.compensates == ("employee:e-1:grant_access:1",)
    assert revoke.payload.roles == CLOUD_ROLES[Role.ENGINEER]  # what the grant asked for
    ignored = [d.ignored for _, d in harness.decisions if d.ignored]
    assert any("CloudAccessGranted" in why for why in ignored)  # already being undone
