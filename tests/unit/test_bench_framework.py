"""The framework participants of the bench: which services, and seeds that fit the load."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from sagas.bench.framework import SERVICES, seeds
from sagas.bench.load import order_placed
from sagas.contracts.codec import Codec
from sagas.contracts.record import Record
from sagas.participant.processor import Processor
from sagas.participant.service import prepare_store
from sagas.participant.store import Store
from sagas.participant.testing import command_record, decode
from services.app import app as examples
from services.definitions import order_fulfilment as saga
from services.messages.inventory import StockReserved, StockUnavailable
from services.messages.payments import PaymentAuthorized, PaymentCaptured, PaymentDeclined
from services.messages.shipping import ShipmentFailed, ShipmentScheduled

ORDERS = 3


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


@pytest.fixture
async def processors(tmp_path: Path, codec: Codec) -> AsyncIterator[dict[str, Processor]]:
    """Each service of the order saga on a store seeded with `seeds` (ORDERS)."""
    opened: dict[str, Processor] = {}
    for name, data in seeds(ORDERS).items():
        seed_file = tmp_path / f"{name}.seed.json"
        seed_file.write_text(json.dumps(data))
        participant = examples.participant(name)
        store = await prepare_store(Store(tmp_path / f"{name}.sqlite3"), participant, seed_file)
        opened[name] = Processor(participant, store, codec)
    yield opened
    for processor in opened.values():
        await processor.store.close()


def test_the_order_saga_needs_inventory_payments_and_shipping() -> None:
    assert SERVICES == ("inventory", "payments", "shipping")
    assert set(seeds()) == set(SERVICES)


async def test_the_seed_takes_exactly_its_orders(
    processors: dict[str, Processor], codec: Codec
) -> None:
    """Every command the saga's own builders make for a bench order succeeds, ORDERS
    times; the next order finds no stock, no money and no carrier left."""
    n = 0

    async def send(service: str, command: Record) -> Any:
        nonlocal n
        n += 1
        record = command_record(codec, command, command_id=f"c-{n}")
        [out] = await processors[service].command(record)
        return decode(codec, out).payload

    for i in range(ORDERS):
        data = saga.OrderData.from_event(order_placed(f"o-{i}"))
        reserved = await send("inventory", saga.reserve_stock(data))
        assert isinstance(reserved, StockReserved)
        authorized = await send("payments", saga.authorize_payment(data))
        assert isinstance(authorized, PaymentAuthorized)
        data = replace(data, authorization_id=authorized.authorization_id)
        assert isinstance(await send("shipping", saga.schedule_shipment(data)), ShipmentScheduled)
        assert isinstance(await send("payments", saga.capture_payment(data)), PaymentCaptured)

    extra = saga.OrderData.from_event(order_placed("o-extra"))
    assert isinstance(await send("inventory", saga.reserve_stock(extra)), StockUnavailable)
    assert isinstance(await send("payments", saga.authorize_payment(extra)), PaymentDeclined)
    assert isinstance(await send("shipping", saga.schedule_shipment(extra)), ShipmentFailed)
