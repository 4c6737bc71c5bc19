"""The business rules of the onboarding services, through their processors (no broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope, Record
from sagas.participant import Participant, Store
from sagas.participant.processor import Processor
from sagas.participant.testing import command_record, decode, incoming, open_processor
from services import access, assets, directory, hr, licensing, mail
from services.app import app as examples
from services.messages.access import (
    CloudAccessDenied,
    CloudAccessGranted,
    GrantCloudAccess,
    RevokeCloudAccess,
)
from services.messages.assets import (
    LaptopProvisioned,
    LaptopUnavailable,
    ProvisionLaptop,
    ReclaimLaptop,
)
from services.messages.directory import (
    AccountDisabled,
    AccountRejected,
    CreateAccount,
    DisableAccount,
)
from services.messages.hr import EmployeeOnboarded, OnboardingCancelled, Role
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

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


class Driver:
    """Sends commands to one processor and returns the decoded reply payloads."""

    def __init__(self, processor: Processor, codec: Codec) -> None:
        self.processor, self.codec, self.n = processor, codec, 0

    async def __call__(self, command: Record, command_id: str | None = None) -> Any:
        self.n += 1
        record = command_record(self.codec, command, command_id=command_id or f"c-{self.n}")
        [out] = await self.processor.command(record)
        return decode(self.codec, out).payload

    @property
    def db(self) -> Any:
        return self.processor.store.db

    async def invariants(self) -> list[str]:
        check = self.processor.participant.invariants
        assert check is not None
        return await check(self.db)


Make = Callable[[Participant], Awaitable[Driver]]


@pytest.fixture
async def make(tmp_path: Path, codec: Codec) -> AsyncIterator[Make]:
    opened: list[Processor] = []

    async def build(participant: Participant) -> Driver:
        path = tmp_path / f"{participant.name}.sqlite3"
        processor = await open_processor(participant, path, codec, clock=lambda: NOW)
        opened.append(processor)
        return Driver(processor, codec)

    yield build
    for processor in opened:
        await processor.store.close()


def test_usernames_come_from_the_full_name() -> None:
    assert directory.base_username("Ada Lovelace") == "ada.lovelace"
    assert directory.base_username("  Zoë  O'Neil-Smith ") == "zoe.oneilsmith"
    assert directory.base_username("李") == ""


async def test_directory_adds_a_digit_on_collision_and_never_reuses_names(make: Make) -> None:
    send = await make(directory.participant())
    first = await send(CreateAccount(employee_id="e-1", full_name="Ada Lovelace"))
    second = await send(CreateAccount(employee_id="e-2", full_name="Ada  Lovelace"))
    assert (first.username, second.username) == ("ada.lovelace2", "ada.lovelace3")  # seeded
    again = await send(CreateAccount(employee_id="e-1", full_name="Ada Lovelace"))
    assert again == first

    disabled = await send(DisableAccount(employee_id="e-1", account_id=first.account_id))
    assert disabled == AccountDisabled(employee_id="e-1", account_id=first.account_id)
    assert await send(DisableAccount(employee_id="e-1", account_id=first.account_id)) == disabled
    assert await send(DisableAccount(employee_id="e-9", account_id="acc-x")) == AccountDisabled(
        employee_id="e-9", account_id="acc-x"
    )
    third = await send(CreateAccount(employee_id="e-3", full_name="Ada Lovelace"))
    assert third.username == "ada.lovelace4"
    rejected = await send(CreateAccount(employee_id="e-4", full_name="!!!"))
    assert isinstance(rejected, AccountRejected)
    assert await directory.accounts_of(send.db, "e-1") == [("ada.lovelace2", "DISABLED")]
    assert await send.invariants() == []


async def test_a_duplicate_command_gets_the_stored_reply_and_changes_nothing(make: Make) -> None:
    send = await make(directory.participant())
    command = CreateAccount(employee_id="e-1", full_name="Linus Torvalds")
    first = await send(command, "employee:e-1:create_account:1")
    await send(DisableAccount(employee_id="e-1", account_id=first.account_id))
    assert await send(command, "employee:e-1:create_account:1") == first
    assert await directory.accounts_of(send.db, "e-1") == [("linus.torvalds", "DISABLED")]


async def test_assets_hand_out_the_pool_and_take_laptops_back(make: Make) -> None:
    send = await make(assets.participant())
    given = await send(ProvisionLaptop(employee_id="e-1", model="X1-CARBON"))
    assert given == LaptopProvisioned(
        employee_id="e-1", asset_tag="X1-CARBON-0001", model="X1-CARBON"
    )
    assert await send(ProvisionLaptop(employee_id="e-1", model="X1-CARBON")) == given
    assert await assets.pool_of(send.db, "X1-CARBON") == (9, 1)
    empty = await send(ProvisionLaptop(employee_id="e-2", model="MBP-14-M4"))
    assert empty == LaptopUnavailable(employee_id="e-2", model="MBP-14-M4")
    unknown = await send(ProvisionLaptop(employee_id="e-2", model="TYPEWRITER"))
    assert isinstance(unknown, LaptopUnavailable)

    for _ in range(2):
        await send(ReclaimLaptop(employee_id="e-1", asset_tag="X1-CARBON-0001"))
    assert await assets.pool_of(send.db, "X1-CARBON") == (10, 0)
    async with send.db.execute("SELECT delivery FROM assignments") as cursor:
        assert [r[0] for r in await cursor.fetchall()] == ["CALLED_OFF"]
    assert await send.invariants() == []


async def test_assets_run_out(make: Make) -> None:
    send = await make(assets.participant())
    for i in range(10):
        assert isinstance(
            await send(ProvisionLaptop(employee_id=f"e-{i}", model="X1-CARBON")), LaptopProvisioned
        )
    assert isinstance(
        await send(ProvisionLaptop(employee_id="e-10", model="X1-CARBON")), LaptopUnavailable
    )
    assert await send.invariants() == []


async def test_mail_creates_refuses_and_deletes(make: Make) -> None:
    send = await make(mail.participant())
    made = await send(CreateMailbox(employee_id="e-1", username="ada.lovelace2"))
    assert made == MailboxCreated(employee_id="e-1", address="ada.lovelace2@example.com")
    assert await send(CreateMailbox(employee_id="e-1", username="ada.lovelace2")) == made
    taken = await send(CreateMailbox(employee_id="e-2", username="ada.lovelace2"))
    assert isinstance(taken, MailboxRejected)
    assert isinstance(
        await send(CreateMailbox(employee_id="e-3", username="postmaster")), MailboxRejected
    )
    assert isinstance(await send(CreateMailbox(employee_id="e-3", username="")), MailboxRejected)

    deleted = await send(DeleteMailbox(employee_id="e-1", address=made.address))
    assert deleted == MailboxDeleted(employee_id="e-1", address=made.address)
    assert await send(DeleteMailbox(employee_id="e-1", address=made.address)) == deleted
    assert await mail.mailboxes_of(send.db, "e-1") == [(made.address, "DELETED")]
    assert await send.invariants() == []


async def test_licences_all_or_nothing_and_entitled_by_role(make: Make) -> None:
    send = await make(licensing.participant())
    for i in range(3):
        got = await send(
            AssignLicences(employee_id=f"m-{i}", role=Role.MANAGER, products=("CRM", "BI"))
        )
        assert got == LicencesAssigned(employee_id=f"m-{i}", products=("CRM", "BI"))
    short = await send(AssignLicences(employee_id="m-3", role=Role.MANAGER, products=("CRM", "BI")))
    assert short == LicencesUnavailable(employee_id="m-3", product="BI")
    assert await licensing.held_by(send.db, "m-3") == []
    assert await licensing.seats_of(send.db, "CRM") == (37, 3)

    again = await send(AssignLicences(employee_id="m-0", role=Role.MANAGER, products=("CRM", "BI")))
    assert again == LicencesAssigned(employee_id="m-0", products=("CRM", "BI"))
    assert await licensing.seats_of(send.db, "BI") == (0, 3)
    refused = await send(AssignLicences(employee_id="s-1", role=Role.SALES, products=("BI",)))
    assert isinstance(refused, CommandFailed)
    assert not refused.retryable

    for _ in range(2):
        back = await send(UnassignLicences(employee_id="m-0", products=("CRM", "BI")))
        assert back == LicencesUnassigned(employee_id="m-0", products=("CRM", "BI"))
    assert await licensing.seats_of(send.db, "BI") == (1, 2)
    assert await send.invariants() == []


async def test_access_grants_known_roles_only(make: Make) -> None:
    send = await make(access.participant())
    granted = await send(GrantCloudAccess(employee_id="e-1", roles=("developer", "log-reader")))
    assert granted == CloudAccessGranted(employee_id="e-1", roles=("developer", "log-reader"))
    await send(GrantCloudAccess(employee_id="e-1", roles=("developer",)))
    assert await access.roles_of(send.db, "e-1") == ["developer", "log-reader"]
    denied = await send(GrantCloudAccess(employee_id="e-2", roles=("developer", "root")))
    assert denied == CloudAccessDenied(employee_id="e-2", reason="unknown cloud role root")
    assert await access.roles_of(send.db, "e-2") == []
    assert isinstance(await send(GrantCloudAccess(employee_id="e-2", roles=())), CloudAccessDenied)

    for _ in range(2):
        await send(RevokeCloudAccess(employee_id="e-1", roles=("developer", "log-reader")))
    assert await access.roles_of(send.db, "e-1") == []
    assert await send.invariants() == []


async def test_hr_records_a_hire_and_follows_its_end(make: Make, codec: Codec) -> None:
    send = await make(hr.participant())
    store: Store = send.processor.store
    request = {
        "employee_id": "e-1",
        "full_name": "Ada",
        "role": "ENGINEER",
        "start_date": "2030-02-01",
    }
    event, out = await hr.record_hire(store, codec, request, NOW)
    assert (event.role, event.start_date, event.laptop_model) == (
        Role.ENGINEER,
        date(2030, 2, 1),
        None,
    )
    assert decode(codec, out).id == "employee:e-1:hired"
    assert out.key == b"e-1"
    bad = {
        "exists already": request,
        "unknown role": {**request, "employee_id": "e-2", "role": "PIRATE"},
        "Invalid isoformat": {**request, "employee_id": "e-3", "start_date": "soon"},
        "needs a full name": {**request, "employee_id": "e-4", "full_name": " "},
    }
    for problem, body in bad.items():
        with pytest.raises(ValueError, match=problem):
            await hr.record_hire(store, codec, body, NOW)
    assert await send.invariants() == ["e-1: EmployeeHired not published yet"]

    done = EmployeeOnboarded(
        employee_id="e-1",
        username="ada",
        email="ada@example.com",
        asset_tag="T-1",
        onboarded_at=NOW,
    )
    late = OnboardingCancelled(employee_id="e-1", reason="late", cancelled_at=NOW)
    for i, end in enumerate((done, late)):
        envelope = Envelope(id=f"end-{i}", type=end.SCHEMA, source="/t", time=NOW, payload=end)
        assert await send.processor.event(incoming(codec, envelope, topic="hr.events")) == []
    assert await hr.status_of(send.db, "e-1") == "ONBOARDED"
