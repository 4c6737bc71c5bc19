"""A saga retried ten thousand times stays as small as one retried fifty times.

The unit worker on a real SQLite store (no broker; in this tier for its minute of CPU):
a retriable step whose participant fails every attempt, decided and committed as a unit
would, 10,000 times. The instance
keeps its latest HISTORY_WINDOW history entries and SEEN_WINDOW input ids; every older
entry went to the saga's history topic, once, in order.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sagas import RetryPolicy, Saga, Start, Step, StepKind
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope
from sagas.definition import Command, On
from sagas.machine import SagaState
from sagas.runtime import topics
from sagas.runtime.batch import HISTORY_WINDOW, SEEN_WINDOW
from sagas.runtime.partitioning import Partitioning
from sagas.runtime.store import Store
from sagas.runtime.transport.memory import MemoryTransport
from sagas.runtime.transport.records import Consumed, Delivered, OutRecord
from sagas.runtime.units import Decided
from sagas.runtime.worker import SagaWorker
from services.app import app as examples
from services.messages.inventory import ReserveStock, StockItem, StockReserved
from services.messages.orders import Address, OrderLine, OrderPlaced

RETRIES = 10_000
T0 = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Order:
    order_id: str


STUBBORN = Saga(
    name="stubborn",
    version=1,
    data=Order,
    starts=(Start(OrderPlaced, "order:{order_id}", lambda e: Order(e.order_id)),),
    steps=(
        Step(
            name="reserve",
            kind=StepKind.RETRIABLE,
            command=Command(
                ReserveStock,
                "inventory",
                lambda d: ReserveStock(
                    order_id=d.order_id, items=(StockItem(sku="s", quantity=1),)
                ),
            ),
            success=(On(StockReserved),),
            retry=RetryPolicy(
                max_attempts=None,
                initial_backoff=timedelta(milliseconds=1),
                max_backoff=timedelta(milliseconds=1),
                jitter=0.0,
            ),
        ),
    ),
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def commands(decided: Decided) -> Iterator[OutRecord]:
    return (o for o in decided.outgoing if o.topic == "inventory.commands")


async def test_ten_thousand_retries_keep_the_instance_bounded(tmp_path: Path) -> None:
    codec = examples.codec()
    store = await Store.open(tmp_path / "engine.db")
    clock = Clock()
    definitions = {STUBBORN.name: {1: STUBBORN}}
    worker = SagaWorker(
        definitions,
        codec,
        examples.classes,
        store,
        clock,
        partitioning=Partitioning(definitions, 1),
        reader=MemoryTransport().partition_reader(),
        physical=str,
        hold_for=timedelta(seconds=60),
    )
    offsets = itertools.count()
    moved: list[dict[str, Any]] = []

    async def commit(decided: Decided) -> None:
        delivered = [Delivered(o.topic, 0, next(offsets)) for o in decided.outgoing]
        for o in decided.outgoing:
            if o.topic == topics.history(STUBBORN.name):
                moved.extend(json.loads(o.value or b"")["entries"])
        await worker.committed(0, decided, delivered)

    def record(envelope: Envelope, topic: str) -> Consumed:
        headers, value = codec.encode(envelope)
        return Consumed(topic, 0, next(offsets), b"o-1", value, tuple(headers))

    placed = OrderPlaced(
        order_id="o-1",
        customer_id="c",
        items=(OrderLine(sku="s", quantity=1, unit_price=Decimal("1.00")),),
        total=Decimal("1.00"),
        currency="EUR",
        shipping_address=Address(recipient="A", line1="B", city="C", postal_code="D", country="DE"),
        placed_at=T0,
    )
    start = Envelope(id="start", type=placed.SCHEMA, source="/t", time=T0, payload=placed)
    try:
        decided = await worker.decide(0, [record(start, "orders.events")])
        await commit(decided)
        [sent] = list(commands(decided))
        for _ in range(RETRIES):
            command = codec.decode(sent.headers, sent.value)
            failed = CommandFailed(
                command_id=command.id,
                command_type=command.type,
                reason="Unavailable: the warehouse is closed",
                retryable=True,
            )
            reply = Envelope(
                id=f"{command.id}:reply",
                type=failed.SCHEMA,
                source="/inventory",
                time=clock.now,
                payload=failed,
                saga_id=command.saga_id,
                in_reply_to=command.id,
            )
            await commit(await worker.decide(0, [record(reply, topics.inbox(STUBBORN.name))]))
            clock.now += timedelta(milliseconds=2)  # past the retry's 1 ms backoff
            ticked = await worker.tick(0)
            assert ticked is not None
            await commit(ticked)
            [sent] = list(commands(ticked))

        body = await store.get(STUBBORN.name, "order:o-1")
        assert body is not None
        assert body["state"] == SagaState.RUNNING.value
        assert body["steps"][0]["attempt"] == RETRIES + 1
        assert len(body["history"]) == HISTORY_WINDOW
        assert len(body["seen"]) <= SEEN_WINDOW
        total = 1 + 2 * RETRIES  # the start, then a reply and a retry timer per attempt
        assert body["history_offset"] + len(body["history"]) == total
        # Bounded: the size of a saga retried fifty times, whatever the count.
        assert len(json.dumps(body)) < 64 * 1024
        # Every entry moved out went to the history topic once, in order.
        assert [e["seq"] for e in moved] == list(range(body["history_offset"]))
        assert [e["seq"] for e in body["history"]] == list(range(body["history_offset"], total))
    finally:
        await store.close()
        codec.close()
