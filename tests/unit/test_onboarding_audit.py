"""`audit_onboarding` finds what the services' stores disagree with (no broker)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.participant import Participant
from sagas.participant.definition import derived_id
from sagas.participant.processor import Processor
from sagas.participant.testing import command_record, incoming, open_processor
from services import access, assets, directory, hr, licensing, mail
from services.app import app as examples
from services.audit import audit_onboarding
from services.definitions.onboarding import CLOUD_ROLES, PRODUCTS
from services.messages.access import GrantCloudAccess
from services.messages.assets import ProvisionLaptop, ReclaimLaptop
from services.messages.directory import CreateAccount, DisableAccount
from services.messages.hr import EmployeeOnboarded, OnboardingCancelled, Role
from services.messages.licensing import AssignLicences
from services.messages.mail import CreateMailbox

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SERVICES: dict[str, Participant] = {
    p.name: p
    for p in (
        hr.participant(),
        directory.participant(),
        assets.participant(),
        mail.participant(),
        licensing.participant(),
        access.participant(),
    )
}


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


class Stores:
    def __init__(self, processors: dict[str, Processor], codec: Codec) -> None:
        self.processors, self.codec = processors, codec

    async def send(self, service: str, command: Record, command_id: str) -> None:
        record = command_record(self.codec, command, command_id=command_id)
        await self.processors[service].command(record)

    async def end(self, event: Record, event_id: str) -> None:
        envelope = Envelope(id=event_id, type=event.SCHEMA, source="/t", time=NOW, payload=event)
        await self.processors["hr"].event(incoming(self.codec, envelope))

    async def onboard(self, e: str, role: Role) -> None:
        """Everything a completed onboarding of ``e`` leaves behind."""
        await hr.record_hire(
            self.processors["hr"].store,
            self.codec,
            {"employee_id": e, "full_name": f"N {e}", "role": role, "start_date": "2030-02-01"},
            NOW,
        )
        # as if Kafka acknowledged the event (see hr.publish_pending)
        await self.processors["hr"].store.db.execute("UPDATE outbox SET published = 1")
        await self.send(
            "directory", CreateAccount(employee_id=e, full_name=f"N {e}"), f"employee:{e}:a:1"
        )
        await self.send(
            "assets", ProvisionLaptop(employee_id=e, model="MBA-13"), f"employee:{e}:l:1"
        )
        await self.send(
            "mail", CreateMailbox(employee_id=e, username=f"n.{e[2:]}"), f"employee:{e}:m:1"
        )
        products = AssignLicences(employee_id=e, role=role, products=PRODUCTS[role])
        await self.send("licensing", products, f"employee:{e}:lic:1")
        await self.send(
            "access", GrantCloudAccess(employee_id=e, roles=CLOUD_ROLES[role]), f"employee:{e}:g:1"
        )
        done = EmployeeOnboarded(
            employee_id=e, username="u", email="m", asset_tag="t", onboarded_at=NOW
        )
        await self.end(done, f"{e}:completed")


async def test_clean_stores_pass_and_every_kind_of_disagreement_is_found(
    tmp_path: Path, codec: Codec
) -> None:
    processors = {
        name: await open_processor(p, tmp_path / f"{name}.sqlite3", codec, clock=lambda: NOW)
        for name, p in SERVICES.items()
    }
    dbs = {name: tmp_path / f"{name}.sqlite3" for name in SERVICES}
    stores = Stores(processors, codec)
    try:
        await stores.onboard("e-1", Role.ENGINEER)
        await stores.onboard("e-2", Role.MANAGER)
        assert await audit_onboarding(dbs, {"e-1": "COMPLETED", "e-2": "COMPLETED"}) == {}

        # e-2 is said to be compensated, but only the laptop came back; and a reclaim
        # for e-3, who never got anything
        await stores.send(
            "assets",
            ReclaimLaptop(employee_id="e-2", asset_tag="MBA-13-0002"),
            "employee:e-2:l:compensate:1",
        )
        await stores.send(
            "directory",
            DisableAccount(employee_id="e-3", account_id="x"),
            "employee:e-3:a:compensate:1",
        )
        found = await audit_onboarding(
            dbs, {"e-1": "COMPLETED", "e-2": "COMPENSATED", "e-3": "COMPENSATED"}
        )
        assert found["hire_status"] == ["e-2: ONBOARDED != CANCELLED", "e-3: None != CANCELLED"]
        assert sorted(found["not_compensated"]) == [
            "access: e-2 still GRANTED: ['billing-viewer']",
            "directory: e-2 still ACTIVE: ['']",
            "licensing: e-2 still ASSIGNED: ['BI', 'CRM']",
            "mail: e-2 still ACTIVE: ['']",
        ]
        # a compensation for a command that never applied anything is no violation
        assert set(found) == {"hire_status", "not_compensated"}

        # an account disabled behind the saga's back, and seats that do not add up
        db = processors["directory"].store.db
        await db.execute("UPDATE accounts SET status = 'DISABLED' WHERE employee_id = 'e-1'")
        await processors["licensing"].store.db.execute("UPDATE products SET used = used + 5")
        await stores.end(OnboardingCancelled(employee_id="e-2", reason="r", cancelled_at=NOW), "x")
        found = await audit_onboarding(dbs, {"e-1": "COMPLETED"})
        assert found["effect_missing"] == ["directory: e-1 completed with [('', 'DISABLED')]"]
        [undone] = found["undone_without_compensation"]
        assert undone.startswith("directory: e-1 acc-")
        assert "licensing: BI: used 6 of 3 seats" in found["invariants"]
        assert len(found["invariants"]) == 5  # each product, and BI over its seats
    finally:
        for processor in processors.values():
            await processor.store.close()


async def test_undoing_what_the_saga_never_applied_and_applying_after_undo_are_found(
    tmp_path: Path, codec: Codec
) -> None:
    processors = {
        name: await open_processor(p, tmp_path / f"{name}.sqlite3", codec, clock=lambda: NOW)
        for name, p in SERVICES.items()
    }
    dbs = {name: tmp_path / f"{name}.sqlite3" for name in SERVICES}
    stores = Stores(processors, codec)
    try:
        await stores.onboard("e-1", Role.ENGINEER)
        # a disable naming a staff account held long before (no compensates header)
        await stores.send(
            "directory",
            DisableAccount(employee_id="staff-2", account_id="acc-seed-1"),
            "employee:staff-2:a:compensate:1",
        )
        # a reclaim that came before its provision (a tombstone), and a buggy service
        # that assigned the laptop anyway
        late = "employee:e-5:l:1"
        record = command_record(
            codec,
            ReclaimLaptop(employee_id="e-5", asset_tag=""),
            command_id="employee:e-5:l:compensate:1",
            compensates=(late,),
        )
        await processors["assets"].command(record)
        await processors["assets"].store.db.execute(
            "INSERT INTO assignments VALUES (?, 'e-5', 'MBA-13-0002', 'ASSIGNED', 'PUBLISHED', "
            "'', '')",
            (derived_id(late, "asg"),),
        )
        found = await audit_onboarding(
            dbs, {"e-1": "COMPLETED", "staff-2": "COMPENSATED", "e-5": "COMPENSATED"}
        )
        assert found["undone_but_not_applied"] == ["directory: staff-2 acc-seed-1"]
        assert found["applied_after_undo"] == [f"assets: e-5 {derived_id(late, 'asg')}"]
        assert found["not_compensated"] == ["assets: e-5 still ASSIGNED: ['']"]
    finally:
        for processor in processors.values():
            await processor.store.close()
