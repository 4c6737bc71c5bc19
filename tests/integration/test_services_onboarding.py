"""The onboarding participants on the real broker: directory, mail, licensing and access.

Each test runs one service in-process, sends commands as the engine would (one of
them twice, with the same ``ce_id``) and checks the replies, the store and that the
duplicate got the identical reply without a second side effect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.record import Record
from sagas.participant import Participant, ParticipantService
from sagas.participant.testing import Wire, new_prefix, running
from services import access, directory, licensing, mail
from services.app import app as examples
from services.messages.access import (
    CloudAccessDenied,
    CloudAccessGranted,
    CloudAccessRevoked,
    GrantCloudAccess,
    RevokeCloudAccess,
)
from services.messages.directory import (
    AccountCreated,
    AccountDisabled,
    CreateAccount,
    DisableAccount,
)
from services.messages.hr import Role
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
from tests.conftest import MakeTopic

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


Script = list[tuple[Record, str]]


@asynccontextmanager
async def session(
    participant: Participant, bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> AsyncIterator[tuple[ParticipantService, Wire]]:
    """The service running (its own topic prefix) and a wire to talk to it."""
    prefix = new_prefix()
    replies = await make_topic("replies")
    async with (
        running(participant, bootstrap, tmp_path, codec, prefix) as service,
        Wire(bootstrap, codec, replies) as wire,
    ):
        yield service, wire


async def exchange(service: ParticipantService, wire: Wire, script: Script) -> dict[str, Any]:
    """Send ``script`` (command, command id) in order; every reply payload by command id."""
    before = len(wire.received)
    for command, command_id in script:
        saga_id = ":".join(command_id.split(":")[:2])
        await wire.send(service.commands_topic, command, command_id, saga_id)
    got = await wire.replies_until(lambda r: len(r) >= before + len(script))
    return {e.id.removesuffix(":reply"): e.payload for e in got}


def assert_duplicate_identical(wire: Wire, command_id: str) -> None:
    """The two replies to ``command_id`` are byte for byte the same."""
    ce_id = f"{command_id}:reply".encode()
    same = [r for r in wire.received if dict(r.headers)["ce_id"] == ce_id]
    assert len(same) == 2
    assert (same[0].value, list(same[0].headers)) == (same[1].value, list(same[1].headers))


async def processed(service: ParticipantService) -> int:
    return await service.store.processed_count()


async def test_directory_rules_and_idempotency(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    async with session(directory.participant(), kafka_bootstrap, make_topic, tmp_path, codec) as (
        service,
        wire,
    ):
        create = "employee:e-1:create_account:1"
        grace = CreateAccount(employee_id="e-1", full_name="Grace Hopper")
        got = await exchange(service, wire, [(grace, create), (grace, create)])
        # e-2 only once e-1 was answered: two sagas' commands are on different
        # partitions, applied in no particular order
        second = CreateAccount(employee_id="e-2", full_name="Grace Hopper")
        got |= await exchange(service, wire, [(second, "employee:e-2:c:1")])
        first = got[create]
        assert isinstance(first, AccountCreated)
        assert first.username == "grace.hopper2"  # the seeded staff hold grace.hopper
        assert got["employee:e-2:c:1"].username == "grace.hopper3"
        assert_duplicate_identical(wire, create)
        assert await directory.accounts_of(service.store.db, "e-1") == [("grace.hopper2", "ACTIVE")]

        disable = DisableAccount(employee_id="e-1", account_id=first.account_id)
        undo = "employee:e-1:create_account:compensate:1"
        got = await exchange(service, wire, [(disable, undo), (disable, undo)])
        assert got[undo] == AccountDisabled(employee_id="e-1", account_id=first.account_id)
        assert_duplicate_identical(wire, undo)
        assert await directory.accounts_of(service.store.db, "e-1") == [
            ("grace.hopper2", "DISABLED")
        ]
        assert await processed(service) == 3
        assert await service.invariants() == []


async def test_mail_rules_and_idempotency(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    async with session(mail.participant(), kafka_bootstrap, make_topic, tmp_path, codec) as (
        service,
        wire,
    ):
        create = "employee:e-1:create_mailbox:1"
        got = await exchange(
            service,
            wire,
            [
                (CreateMailbox(employee_id="e-1", username="grace.hopper2"), create),
                (CreateMailbox(employee_id="e-1", username="grace.hopper2"), create),
            ],
        )
        # Other sagas' commands go to other partitions, which are not read in any order
        # relative to e-1's: they are sent once e-1 has its mailbox.
        got |= await exchange(
            service,
            wire,
            [
                (CreateMailbox(employee_id="e-2", username="grace.hopper2"), "employee:e-2:m:1"),
                (CreateMailbox(employee_id="e-3", username="postmaster"), "employee:e-3:m:1"),
            ],
        )
        address = "grace.hopper2@example.com"
        assert got[create] == MailboxCreated(employee_id="e-1", address=address)
        assert_duplicate_identical(wire, create)
        assert isinstance(got["employee:e-2:m:1"], MailboxRejected)
        assert got["employee:e-3:m:1"] == MailboxRejected(
            employee_id="e-3", reason="postmaster is reserved"
        )

        delete = DeleteMailbox(employee_id="e-1", address=address)
        undo = "employee:e-1:create_mailbox:compensate:1"
        got = await exchange(service, wire, [(delete, undo), (delete, undo)])
        assert got[undo] == MailboxDeleted(employee_id="e-1", address=address)
        assert_duplicate_identical(wire, undo)
        assert await mail.mailboxes_of(service.store.db, "e-1") == [(address, "DELETED")]
        assert await service.invariants() == []


async def test_licensing_rules_and_idempotency(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    async with session(licensing.participant(), kafka_bootstrap, make_topic, tmp_path, codec) as (
        service,
        wire,
    ):
        products = ("CRM", "BI")
        script: Script = [
            (
                AssignLicences(employee_id=f"m-{i}", role=Role.MANAGER, products=products),
                f"employee:m-{i}:l:1",
            )
            for i in range(4)
        ]
        script.insert(1, script[0])
        got = await exchange(service, wire, script)
        assert_duplicate_identical(wire, "employee:m-0:l:1")
        # Commands of different employees sit on different partitions: which of the
        # four loses the last BI seat depends on the order the service reads them.
        ok = LicencesAssigned
        assigned = [i for i in range(4) if isinstance(got[f"employee:m-{i}:l:1"], ok)]
        (loser,) = sorted(set(range(4)) - set(assigned))
        for i in assigned:
            assert got[f"employee:m-{i}:l:1"] == ok(employee_id=f"m-{i}", products=products)
        assert got[f"employee:m-{loser}:l:1"] == LicencesUnavailable(
            employee_id=f"m-{loser}", product="BI"
        )
        assert await licensing.seats_of(service.store.db, "BI") == (0, 3)
        assert await licensing.seats_of(service.store.db, "CRM") == (37, 3)
        assert await licensing.held_by(service.store.db, f"m-{loser}") == []

        holder = f"m-{assigned[0]}"
        back = UnassignLicences(employee_id=holder, products=products)
        undo = f"employee:{holder}:l:compensate:1"
        got = await exchange(service, wire, [(back, undo), (back, undo)])
        assert got[undo] == LicencesUnassigned(employee_id=holder, products=products)
        assert_duplicate_identical(wire, undo)
        assert await licensing.seats_of(service.store.db, "BI") == (1, 2)
        assert await service.invariants() == []


async def test_access_rules_and_idempotency(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    async with session(access.participant(), kafka_bootstrap, make_topic, tmp_path, codec) as (
        service,
        wire,
    ):
        roles = ("developer", "log-reader")
        grant = "employee:e-1:grant_access:1"
        got = await exchange(
            service,
            wire,
            [
                (GrantCloudAccess(employee_id="e-1", roles=roles), grant),
                (GrantCloudAccess(employee_id="e-1", roles=roles), grant),
                (
                    GrantCloudAccess(employee_id="e-2", roles=("developer", "god")),
                    "employee:e-2:g:1",
                ),
            ],
        )
        assert got[grant] == CloudAccessGranted(employee_id="e-1", roles=roles)
        assert_duplicate_identical(wire, grant)
        assert got["employee:e-2:g:1"] == CloudAccessDenied(
            employee_id="e-2", reason="unknown cloud role god"
        )
        assert await access.roles_of(service.store.db, "e-1") == list(roles)
        assert await access.roles_of(service.store.db, "e-2") == []

        revoke = RevokeCloudAccess(employee_id="e-1", roles=roles)
        undo = "employee:e-1:grant_access:compensate:1"
        got = await exchange(service, wire, [(revoke, undo), (revoke, undo)])
        assert got[undo] == CloudAccessRevoked(employee_id="e-1", roles=roles)
        assert_duplicate_identical(wire, undo)
        assert await access.roles_of(service.store.db, "e-1") == []
        assert await service.invariants() == []
