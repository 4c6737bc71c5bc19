"""Order sagas as the engine stores them, copied many times for the benches.

The order saga is run in the test kit's `Harness` through varied outcomes (completed,
compensated, waiting on each step, compensating); each instance is encoded exactly as
the engine writes it (`stored_row` + `changelog.instance_value`), and each copy gets its
own order id in place of `TOKEN`. `fill_changelog` puts copies on a changelog partition,
`fill_store` into an engine store (the rows catch-up would write for them).
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sagas.contracts.record import Record
from sagas.machine import SagaInstance
from sagas.runtime import changelog, store
from sagas.runtime.batch import stored_row
from sagas.runtime.store import Changes, Store, StoredInstance
from sagas.testing import Handler, Harness, reply, silent
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReserved,
)
from services.messages.orders import Address, OrderLine, OrderPlaced
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
    DeclineReason,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentVoided,
    VoidPayment,
)
from services.messages.shipping import (
    CancelShipment,
    ScheduleShipment,
    ShipmentCancelled,
    ShipmentFailed,
    ShipmentScheduled,
)

SAGA = ORDER_FULFILMENT.name
TOKEN = "BENCHTEMPLATE0"
"""The order id of the template instances; each copy replaces it with its own."""

PARTITION = 0
"""The benches run the saga with one inbox partition, so one engine owns everything."""


# -- realistic instances --------------------------------------------------------------


def order() -> OrderPlaced:
    """The template order (order id `TOKEN`)."""
    return OrderPlaced(
        order_id=TOKEN,
        customer_id="customer-0042",
        items=(
            OrderLine(sku="SKU-1001", quantity=2, unit_price=Decimal("19.90")),
            OrderLine(sku="SKU-2002", quantity=1, unit_price=Decimal("5.50")),
        ),
        total=Decimal("45.30"),
        currency="EUR",
        shipping_address=Address(
            recipient="Ada Lovelace",
            line1="1 Main St",
            city="Oslo",
            postal_code="0150",
            country="NO",
        ),
        placed_at=datetime(2030, 1, 1, 12, tzinfo=UTC),
    )


def _participants(**overrides: Handler) -> dict[type[Record], Handler]:
    handlers: dict[type[Record], Handler] = {
        ReserveStock: reply(lambda c: StockReserved(order_id=c.order_id, reservation_id="r-77")),
        ReleaseStock: reply(
            lambda c: StockReleased(order_id=c.order_id, reservation_id=c.reservation_id)
        ),
        AuthorizePayment: reply(
            lambda c: PaymentAuthorized(
                order_id=c.order_id, authorization_id="a-77", amount=c.amount, currency=c.currency
            )
        ),
        VoidPayment: reply(
            lambda c: PaymentVoided(order_id=c.order_id, authorization_id=c.authorization_id)
        ),
        ScheduleShipment: reply(
            lambda c: ShipmentScheduled(order_id=c.order_id, shipment_id="s-77", carrier="DHL")
        ),
        CancelShipment: reply(
            lambda c: ShipmentCancelled(order_id=c.order_id, shipment_id=c.shipment_id)
        ),
        CapturePayment: reply(
            lambda c: PaymentCaptured(
                order_id=c.order_id, authorization_id=c.authorization_id, capture_id="cap-77"
            )
        ),
    }
    by_name = {cls.__name__: cls for cls in handlers}
    for name, handler in overrides.items():
        handlers[by_name[name]] = handler
    return handlers


_SCENARIOS: list[tuple[int, dict[str, Handler], timedelta | None]] = [
    # (weight, participants overridden, run for: None = to the end)
    (55, {}, None),  # completed
    (
        10,
        {
            "AuthorizePayment": reply(
                lambda c: PaymentDeclined(
                    order_id=c.order_id, reason=DeclineReason.INSUFFICIENT_FUNDS
                )
            )
        },
        None,
    ),  # compensated: stock released
    (
        5,
        {"ScheduleShipment": reply(lambda c: ShipmentFailed(order_id=c.order_id, reason="x"))},
        None,
    ),  # compensated: payment voided, stock released
    (10, {"ReserveStock": silent()}, timedelta(milliseconds=500)),  # waits for stock
    (8, {"AuthorizePayment": silent()}, timedelta(seconds=3)),  # waits, one resend
    (7, {"ScheduleShipment": silent()}, timedelta(seconds=4)),  # waits, resends
    (
        5,
        {
            "ScheduleShipment": reply(lambda c: ShipmentFailed(order_id=c.order_id, reason="x")),
            "VoidPayment": silent(),
        },
        timedelta(seconds=2),
    ),  # compensating
]


def template_instances() -> list[tuple[int, SagaInstance[Any]]]:
    """(weight, instance) of the order saga in varied states, order id `TOKEN`."""
    found: list[tuple[int, SagaInstance[Any]]] = []
    for weight, overrides, until in _SCENARIOS:
        harness = Harness(ORDER_FULFILMENT, _participants(**overrides))
        saga_id = harness.start(order())
        harness.run(until=until)
        found.append((weight, harness.instance(saga_id)))
    return found


@dataclass(frozen=True)
class Templates:
    """Encoded templates, picked by weight; `record` makes copy ``i`` of one."""

    values: Sequence[bytes]
    rows: Sequence[StoredInstance]
    picks: Sequence[int]
    """Template index per slot of a 100-slot wheel (weights add up to 100)."""

    @staticmethod
    def build(partition: int = PARTITION) -> Templates:
        weighted = template_instances()
        rows = [stored_row(instance, partition) for _, instance in weighted]
        values = [changelog.instance_value(row) for row in rows]
        picks = [i for i, (weight, _) in enumerate(weighted) for _ in range(weight)]
        return Templates(values, rows, picks)

    def which(self, i: int) -> int:
        return self.picks[(i * 37) % len(self.picks)]

    @staticmethod
    def order_id(i: int) -> str:
        return f"o{i:013d}"  # as long as TOKEN

    @staticmethod
    def saga_id(i: int) -> str:
        return f"order:{Templates.order_id(i)}"

    def record(self, i: int) -> tuple[bytes, bytes]:
        """(key, value) of the changelog record of copy ``i``."""
        value = self.values[self.which(i)].replace(TOKEN.encode(), self.order_id(i).encode())
        return self.saga_id(i).encode(), value

    def row(self, i: int) -> StoredInstance:
        """The store row of copy ``i``: what catch-up writes for `record` (i)."""
        return changelog.instance_of(self.record(i)[1])


async def fill_changelog(bootstrap: str, topic: str, n: int, templates: Templates) -> int:
    """Produce ``n`` instance records onto partition 0 of ``topic``; return its end offset."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=1 << 20,
        max_request_size=8 << 20,
    )
    await producer.start()
    try:
        for i in range(n):
            key, value = templates.record(i)
            await producer.send(topic, value, key=key, partition=PARTITION)
        await producer.flush()
    finally:
        await producer.stop()
    return await end_offset(bootstrap, topic)


async def end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    await consumer.start()
    try:
        tp = TopicPartition(topic, PARTITION)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def fill_store(db: Path, n: int, templates: Templates, chunk: int = 20_000) -> None:
    """Write ``n`` order sagas into a new engine store at ``db``, in the store's format.

    `Store.open` makes the file (schema, WAL). The templates' rows are the store's own
    (`store.row`: what `Store.apply` writes for them); SQLite
    copies them ``n`` times, each copy with its own order id in place of `TOKEN`
    (copy ``i`` is `Templates.row` (i), byte for byte), a million sagas in minutes.
    """
    store_ = await Store.open(db)
    await store_.apply(Changes(SAGA, PARTITION, next_changelog_offset=0))
    await store_.close()
    await asyncio.to_thread(_bulk_insert, db, n, templates, chunk)


_COPIES = "WITH RECURSIVE s(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?) "
_ORDER_ID = "printf('o%013d', s.i)"  # Templates.order_id
_PICK = "FROM s JOIN t_pick p ON p.slot = (s.i * 37) % 100"  # Templates.which


def _bulk_insert(db: Path, n: int, templates: Templates, chunk: int) -> None:
    swap = f"'{TOKEN}', {_ORDER_ID}"
    with contextlib.closing(sqlite3.connect(db)) as c:
        # A bench fixture (a crash just means a redo): no journal, so the rows are
        # written once instead of to the WAL and then to the file; WAL again at the end.
        c.execute("PRAGMA journal_mode=OFF")
        c.execute("PRAGMA synchronous=OFF")
        c.execute("CREATE TEMP TABLE t_pick (slot INTEGER PRIMARY KEY, k INTEGER)")
        c.execute("CREATE TEMP TABLE t_inst (k INTEGER, n, i, p, v, st, sa, ua, ea, nd, body)")
        c.executemany("INSERT INTO t_pick VALUES (?,?)", list(enumerate(templates.picks)))
        for k, row in enumerate(templates.rows):
            c.execute("INSERT INTO t_inst VALUES (?,?,?,?,?,?,?,?,?,?,?)", (k, *store.row(row)))
        for start in range(0, n, chunk):
            bounds = (start, min(n, start + chunk))
            c.execute(
                _COPIES + "INSERT INTO instances (saga_name, saga_id, partition, version, state,"
                " started_at, updated_at, ended_at, next_due, body)"
                f" SELECT t.n, replace(t.i, {swap}), t.p, t.v, t.st, t.sa, t.ua, t.ea, t.nd,"
                f" replace(t.body, {swap}) {_PICK} JOIN t_inst t ON t.k = p.k",
                bounds,
            )
            c.commit()
        c.execute("PRAGMA journal_mode=WAL")
