"""The shipping service on the real broker: capacity, cancellation, idempotency."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagas.contracts.codec import Codec
from sagas.participant.testing import Wire, new_prefix, running
from services import shipping
from services.app import app as examples
from services.messages.shipping import (
    Address,
    CancelShipment,
    ScheduleShipment,
    ShipmentCancelled,
    ShipmentFailed,
    ShipmentItem,
    ShipmentScheduled,
)
from tests.conftest import MakeTopic

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


def schedule(order_id: str) -> ScheduleShipment:
    return ScheduleShipment(
        order_id=order_id,
        address=Address(recipient="Ada", line1="x", city="y", postal_code="1", country="DE"),
        items=(ShipmentItem(sku="SKU-1", quantity=1),),
    )


async def test_capacity_cancellation_and_idempotency(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    seed = tmp_path / "carriers.json"
    one = {"carriers": [{"name": "One", "capacity": 1, "transit_days": 1, "countries": "DE"}]}
    seed.write_text(json.dumps(one))
    prefix = new_prefix()
    commands = f"{prefix}shipping.commands"
    replies = await make_topic("replies")
    async with (
        running(
            shipping.participant(), kafka_bootstrap, tmp_path, codec, prefix, seed_file=seed
        ) as service,
        Wire(kafka_bootstrap, codec, replies) as wire,
    ):
        # Different orders sit on different partitions, read in any order: each
        # command whose outcome depends on an earlier one is sent after its reply.
        await wire.send(commands, schedule("o-1"), "o-1:ship:1", "order:o-1")
        await wire.send(commands, schedule("o-1"), "o-1:ship:1", "order:o-1")
        await wire.replies_until(lambda r: len(r) == 2)
        await wire.send(commands, schedule("o-2"), "o-2:ship:1", "order:o-2")
        got = await wire.replies_until(lambda r: len(r) == 3)

        first, again, full = (e.payload for e in got)
        assert isinstance(first, ShipmentScheduled)
        assert first == again
        assert full == ShipmentFailed(
            order_id="o-2", reason="no carrier with capacity left serves DE"
        )

        cancel = CancelShipment(order_id="o-1", shipment_id=first.shipment_id)
        await wire.send(commands, cancel, "o-1:cancel:1", "order:o-1")
        await wire.replies_until(lambda r: len(r) == 4)
        await wire.send(commands, schedule("o-2"), "o-2:ship:2", "order:o-2")
        got = await wire.replies_until(lambda r: len(r) == 5)
        assert isinstance(got[3].payload, ShipmentCancelled)
        assert isinstance(got[4].payload, ShipmentScheduled)
        assert await service.invariants() == []
