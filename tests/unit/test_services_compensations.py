"""Every example service undoes exactly what the compensated commands did: whether the
command was applied, never arrived, or arrives after its undo (no broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Record
from sagas.participant import Participant
from sagas.participant.processor import REFUSED, Processor
from sagas.participant.testing import command_record, decode, open_processor
from services import access, assets, directory, inventory, licensing, mail, payments, shipping
from services.app import app as examples
from services.messages.access import GrantCloudAccess, RevokeCloudAccess
from services.messages.assets import ProvisionLaptop, ReclaimLaptop
from services.messages.directory import CreateAccount, DisableAccount
from services.messages.hr import Role
from services.messages.inventory import ReleaseStock, ReserveStock, StockItem
from services.messages.licensing import AssignLicences, UnassignLicences
from services.messages.mail import CreateMailbox, DeleteMailbox
from services.messages.payments import AuthorizePayment, VoidPayment
from services.messages.shipping import Address, CancelShipment, ScheduleShipment, ShipmentItem

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)
SAGA = "saga:1"
FORWARD = "saga:1:step:1"
RETRY = "saga:1:step:2"
UNDO = "saga:1:step:compensate:1"


async def _count(db: aiosqlite.Connection, sql: str) -> int:
    async with db.execute(sql) as cursor:
        row = await cursor.fetchone()
    return int(row[0]) if row and row[0] is not None else 0


@dataclass(frozen=True)
class Case:
    """A forward command, its compensation built without the reply's data, and how much
    of the forward effect is held in the store."""

    participant: Callable[[], Participant]
    forward: Record
    blind_undo: Record
    held: Callable[[aiosqlite.Connection], Awaitable[int]]


ADDRESS = Address(recipient="A", line1="l", city="Berlin", postal_code="1", country="DE")
CASES = {
    "inventory": Case(
        inventory.participant,
        ReserveStock(order_id="o-1", items=(StockItem(sku="SKU-1", quantity=2),)),
        ReleaseStock(order_id="o-1", reservation_id=""),
        lambda db: _count(db, "SELECT SUM(reserved) FROM stock"),
    ),
    "payments": Case(
        payments.participant,
        AuthorizePayment(order_id="o-1", customer_id="c-1", amount=Decimal("9.90"), currency="EUR"),
        VoidPayment(order_id="o-1", authorization_id=""),
        lambda db: _count(db, "SELECT SUM(held) FROM accounts"),
    ),
    "shipping": Case(
        shipping.participant,
        ScheduleShipment(
            order_id="o-1", address=ADDRESS, items=(ShipmentItem(sku="SKU-1", quantity=1),)
        ),
        CancelShipment(order_id="o-1", shipment_id=""),
        lambda db: _count(db, "SELECT SUM(booked) FROM carriers"),
    ),
    "directory": Case(
        directory.participant,
        CreateAccount(employee_id="e-1", full_name="Nia Ode"),
        DisableAccount(employee_id="e-1", account_id=""),
        lambda db: _count(db, "SELECT COUNT(*) FROM accounts WHERE status = 'ACTIVE'"),
    ),
    "assets": Case(
        assets.participant,
        ProvisionLaptop(employee_id="e-1", model="MBA-13"),
        ReclaimLaptop(employee_id="e-1", asset_tag=""),
        lambda db: _count(db, "SELECT COUNT(*) FROM laptops WHERE status = 'ASSIGNED'"),
    ),
    "mail": Case(
        mail.participant,
        CreateMailbox(employee_id="e-1", username="nia.ode"),
        DeleteMailbox(employee_id="e-1", address=""),
        lambda db: _count(db, "SELECT COUNT(*) FROM mailboxes WHERE status = 'ACTIVE'"),
    ),
    "licensing": Case(
        licensing.participant,
        AssignLicences(employee_id="e-1", role=Role.ENGINEER, products=("IDE", "GITHUB")),
        UnassignLicences(employee_id="e-1", products=()),
        lambda db: _count(db, "SELECT SUM(used) FROM products"),
    ),
    "access": Case(
        access.participant,
        GrantCloudAccess(employee_id="e-1", roles=("developer", "log-reader")),
        RevokeCloudAccess(employee_id="e-1", roles=()),
        lambda db: _count(db, "SELECT COUNT(*) FROM grants WHERE status = 'GRANTED'"),
    ),
}
"""Standing seeds hold something already (directory's staff accounts): see `baseline`."""


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


class Driver:
    def __init__(self, processor: Processor, codec: Codec) -> None:
        self.processor, self.codec = processor, codec

    @property
    def db(self) -> aiosqlite.Connection:
        return self.processor.store.db

    async def __call__(
        self,
        command: Record,
        command_id: str,
        compensates: tuple[str, ...] = (),
        saga_id: str | None = SAGA,
    ) -> Any:
        record = command_record(
            self.codec, command, command_id=command_id, compensates=compensates, saga_id=saga_id
        )
        [out] = await self.processor.command(record)
        return decode(self.codec, out).payload

    async def invariants(self) -> list[str]:
        check = self.processor.participant.invariants
        assert check is not None
        return await check(self.db)


@pytest.fixture
async def make(tmp_path: Path, codec: Codec) -> AsyncIterator[Callable[[Participant], Any]]:
    opened: list[Processor] = []

    async def build(participant: Participant) -> Driver:
        path = tmp_path / f"{participant.name}.sqlite3"
        p = await open_processor(participant, path, codec, clock=lambda: NOW)
        opened.append(p)
        return Driver(p, codec)

    yield build
    for p in opened:
        await p.store.close()


async def _case(make: Callable[[Participant], Any], name: str) -> tuple[Case, Driver, int]:
    case = CASES[name]
    send: Driver = await make(case.participant())
    return case, send, await case.held(send.db)


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_blind_compensation_undoes_an_applied_command(make: Any, name: str) -> None:
    case, send, baseline = await _case(make, name)
    await send(case.forward, FORWARD)
    assert await case.held(send.db) > baseline
    undone = await send(case.blind_undo, UNDO, compensates=(FORWARD,))
    assert not isinstance(undone, CommandFailed)
    assert await case.held(send.db) == baseline
    assert await send.invariants() == []


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_retried_step_is_undone_once_whichever_attempt_applied(
    make: Any, name: str
) -> None:
    case, send, baseline = await _case(make, name)
    await send(case.forward, FORWARD)
    await send(case.forward, RETRY)  # business idempotency: the same effect again
    await send(case.blind_undo, UNDO, compensates=(FORWARD, RETRY))
    assert await case.held(send.db) == baseline
    assert await send.invariants() == []


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_compensation_for_a_command_never_applied_changes_nothing(
    make: Any, name: str
) -> None:
    case, send, baseline = await _case(make, name)
    undone = await send(case.blind_undo, UNDO, compensates=(FORWARD,))
    assert not isinstance(undone, CommandFailed)
    assert await case.held(send.db) == baseline


@pytest.mark.parametrize("name", sorted(CASES))
async def test_a_command_arriving_after_its_compensation_is_refused(make: Any, name: str) -> None:
    case, send, baseline = await _case(make, name)
    await send(case.blind_undo, UNDO, compensates=(FORWARD,))
    late = await send(case.forward, FORWARD)
    assert isinstance(late, CommandFailed)
    assert late.reason.startswith(REFUSED)
    assert not late.retryable
    assert await case.held(send.db) == baseline
    assert await send.invariants() == []


async def test_revoking_access_keeps_a_role_held_before_the_saga(make: Any) -> None:
    send: Driver = await make(access.participant())
    await send(GrantCloudAccess(employee_id="e-1", roles=("developer",)), "old:1", saga_id="old")
    await send(GrantCloudAccess(employee_id="e-1", roles=("developer", "log-reader")), FORWARD)
    assert await access.roles_of(send.db, "e-1") == ["developer", "log-reader"]

    # with the header: what the compensated commands granted
    await send(RevokeCloudAccess(employee_id="e-1", roles=()), UNDO, compensates=(FORWARD,))
    assert await access.roles_of(send.db, "e-1") == ["developer"]


async def test_a_revoke_without_the_header_revokes_only_what_its_saga_granted(make: Any) -> None:
    send: Driver = await make(access.participant())
    await send(GrantCloudAccess(employee_id="e-1", roles=("developer",)), "old:1", saga_id="old")
    roles = ("developer", "log-reader")
    await send(GrantCloudAccess(employee_id="e-1", roles=roles), FORWARD)
    await send(RevokeCloudAccess(employee_id="e-1", roles=roles), UNDO)
    assert await access.roles_of(send.db, "e-1") == ["developer"]
    # outside any saga (an operator's request): the roles named
    await send(RevokeCloudAccess(employee_id="e-1", roles=roles), "ops:1", saga_id=None)
    assert await access.roles_of(send.db, "e-1") == []


async def test_unassigning_keeps_a_licence_held_before_the_saga(make: Any) -> None:
    send: Driver = await make(licensing.participant())
    await send(AssignLicences(employee_id="e-1", role=Role.ENGINEER, products=("IDE",)), "old:1")
    await send(CASES["licensing"].forward, FORWARD)
    assert await licensing.held_by(send.db, "e-1") == ["GITHUB", "IDE"]
    await send(CASES["licensing"].blind_undo, UNDO, compensates=(FORWARD,))
    assert await licensing.held_by(send.db, "e-1") == ["IDE"]
    assert await send.invariants() == []


async def test_disabling_keeps_an_account_held_before_the_saga(make: Any) -> None:
    send: Driver = await make(directory.participant())
    held = await send(CreateAccount(employee_id="e-1", full_name="Nia Ode"), "old:1")
    again = await send(CreateAccount(employee_id="e-1", full_name="Nia Ode"), FORWARD)
    assert again == held  # the employee's account, given again
    await send(DisableAccount(employee_id="e-1", account_id=""), UNDO, compensates=(FORWARD,))
    assert await directory.accounts_of(send.db, "e-1") == [("nia.ode", "ACTIVE")]


def test_every_service_with_a_compensation_is_covered() -> None:
    shipped = {p.name for p in examples.participants if len(p.handlers) > 1}
    assert shipped == set(CASES)
