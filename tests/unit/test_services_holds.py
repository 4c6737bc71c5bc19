"""Stock reservations and laptop assignments are holds with a time to live: confirmed by
the saga's end event, or released by the service's sweep (no broker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.participant import Participant, Timers
from sagas.participant.processor import Processor
from sagas.participant.testing import command_record, decode, incoming, open_processor
from services import assets, inventory
from services.app import app as examples
from services.messages.assets import ProvisionLaptop
from services.messages.hr import EmployeeOnboarded
from services.messages.inventory import ReserveStock, StockItem
from services.messages.orders import OrderFulfilled

NOW = datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


class Service:
    def __init__(self, processor: Processor, codec: Codec) -> None:
        self.processor, self.codec = processor, codec
        self.timers = Timers(processor.participant, processor.store)

    async def send(self, command: Record, command_id: str) -> Record:
        [out] = await self.processor.command(
            command_record(self.codec, command, command_id=command_id)
        )
        return decode(self.codec, out).payload

    async def event(self, event: Record, event_id: str) -> None:
        envelope = Envelope(id=event_id, type=event.SCHEMA, source="/t", time=NOW, payload=event)
        await self.processor.event(incoming(self.codec, envelope))


@pytest.fixture
async def make(tmp_path: Path, codec: Codec) -> AsyncIterator[object]:
    opened: list[Processor] = []

    async def build(participant: Participant) -> Service:
        p = await open_processor(
            participant, tmp_path / f"{participant.name}.sqlite3", codec, clock=lambda: NOW
        )
        opened.append(p)
        return Service(p, codec)

    yield build
    for p in opened:
        await p.store.close()


def reserve(order_id: str) -> ReserveStock:
    return ReserveStock(order_id=order_id, items=(StockItem(sku="SKU-1", quantity=3),))


def fulfilled(order_id: str) -> OrderFulfilled:
    return OrderFulfilled(order_id=order_id, shipment_id="s", fulfilled_at=NOW)


async def test_an_unconfirmed_reservation_is_released_when_its_hold_expires(make: object) -> None:
    stock: Service = await make(inventory.participant())  # type: ignore[operator]
    db = stock.processor.store.db
    await stock.send(reserve("o-gone"), "order:o-gone:reserve_stock:1")
    await stock.send(reserve("o-sold"), "order:o-sold:reserve_stock:1")
    await stock.event(fulfilled("o-sold"), "order:o-sold:fulfilled")

    await stock.timers.tick(NOW + inventory.HOLD_TTL - timedelta(seconds=1))
    assert await inventory.stock_of(db, "SKU-1") == (94, 6)
    late = NOW + inventory.HOLD_TTL + inventory.SWEEP  # the next sweep
    assert await inventory.hold_problems(db, late + 3 * inventory.SWEEP) == [
        f"res-{_digest('order:o-gone:reserve_stock:1')}: held past its expiry "
        f"{(NOW + inventory.HOLD_TTL).isoformat()}"
    ]
    await stock.timers.tick(late)
    assert await inventory.stock_of(db, "SKU-1") == (97, 3)  # the sold order keeps its stock
    assert await inventory.hold_problems(db, late + timedelta(days=9)) == []
    assert await inventory.invariants(db) == []


async def test_an_order_fulfilled_after_its_hold_expired_breaks_an_invariant(make: object) -> None:
    stock: Service = await make(inventory.participant())  # type: ignore[operator]
    await stock.send(reserve("o-1"), "order:o-1:reserve_stock:1")
    await stock.timers.tick(NOW + 2 * inventory.HOLD_TTL)
    await stock.event(fulfilled("o-1"), "order:o-1:fulfilled")
    [problem] = await inventory.invariants(stock.processor.store.db)
    assert problem.endswith("its order was fulfilled after it expired")


async def test_an_unconfirmed_laptop_goes_back_to_the_pool_when_its_hold_expires(
    make: object,
) -> None:
    pool: Service = await make(assets.participant())  # type: ignore[operator]
    db = pool.processor.store.db
    await pool.send(ProvisionLaptop(employee_id="e-gone", model="MBA-13"), "employee:e-gone:l:1")
    await pool.send(ProvisionLaptop(employee_id="e-kept", model="MBA-13"), "employee:e-kept:l:1")
    onboarded = EmployeeOnboarded(
        employee_id="e-kept", username="u", email="m", asset_tag="t", onboarded_at=NOW
    )
    await pool.event(onboarded, "employee:e-kept:onboarded")

    await pool.timers.tick(NOW + assets.HOLD_TTL - timedelta(seconds=1))
    assert await assets.pool_of(db, "MBA-13") == (28, 2)
    late = NOW + assets.HOLD_TTL + assets.SWEEP  # the next sweep
    assert len(await assets.hold_problems(db, late + 3 * assets.SWEEP)) == 1
    await pool.timers.tick(late)
    assert await assets.pool_of(db, "MBA-13") == (29, 1)
    async with db.execute("SELECT employee_id, status, delivery FROM assignments") as c:
        rows = sorted([tuple(r) async for r in c])
    assert rows == [("e-gone", "RECLAIMED", "CALLED_OFF"), ("e-kept", "ASSIGNED", "PENDING")]
    assert await assets.hold_problems(db, late + timedelta(days=30)) == []
    assert await assets.invariants(db) == []


def test_holds_outlive_the_sagas_deadlines() -> None:
    from services.definitions.onboarding import ONBOARDING
    from services.definitions.order_fulfilment import ORDER_FULFILMENT

    assert ORDER_FULFILMENT.deadline is not None
    assert ONBOARDING.deadline is not None
    assert ORDER_FULFILMENT.deadline < inventory.HOLD_TTL
    assert ONBOARDING.deadline < assets.HOLD_TTL


def _digest(command_id: str) -> str:
    from sagas.participant.definition import derived_id

    return derived_id(command_id, "x")[2:]
