"""A small saga over real contracts, scripted participants, and an engine harness."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sagas import App, Command, Compensation, On, RetryPolicy, Saga, Start, Step
from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.runtime.engine import Engine
from sagas.runtime.store import Store
from sagas.runtime.transport.kafka import KafkaTransport
from sagas.settings import EngineSettings
from services.app import app as examples
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockItem,
    StockReleased,
    StockReserved,
    StockUnavailable,
)
from services.messages.orders import Address, OrderLine, OrderPlaced
from services.messages.payments import (
    AuthorizePayment,
    DeclineReason,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentVoided,
    VoidPayment,
)


@dataclass(frozen=True)
class Order:
    order_id: str
    customer_id: str
    items: tuple[StockItem, ...]
    total: Decimal
    reservation_id: str | None = None
    authorization_id: str | None = None

    @staticmethod
    def from_event(e: OrderPlaced) -> Order:
        items = tuple(StockItem(sku=i.sku, quantity=i.quantity) for i in e.items)
        return Order(e.order_id, e.customer_id, items, e.total)


def _reserved(d: Order, r: StockReserved) -> Order:
    return replace(d, reservation_id=r.reservation_id)


def _authorized(d: Order, r: PaymentAuthorized) -> Order:
    return replace(d, authorization_id=r.authorization_id)


def two_step_saga(name: str) -> Saga[Order]:
    """Reserve stock, then authorize payment; both compensatable."""
    return Saga(
        name=name,
        version=1,
        data=Order,
        starts=(Start(OrderPlaced, "order:{order_id}", Order.from_event),),
        steps=(
            Step(
                name="reserve_stock",
                command=Command(
                    ReserveStock,
                    "inventory",
                    lambda d: ReserveStock(order_id=d.order_id, items=d.items),
                ),
                success=(On(StockReserved, _reserved),),
                failure=(On(StockUnavailable),),
                compensation=Compensation(
                    command=Command(
                        ReleaseStock,
                        "inventory",
                        lambda d: ReleaseStock(
                            order_id=d.order_id, reservation_id=d.reservation_id or ""
                        ),
                    ),
                    success=(StockReleased,),
                ),
                timeout=timedelta(seconds=20),
            ),
            Step(
                name="authorize_payment",
                command=Command(
                    AuthorizePayment,
                    "payments",
                    lambda d: AuthorizePayment(
                        order_id=d.order_id,
                        customer_id=d.customer_id,
                        amount=d.total,
                        currency="EUR",
                    ),
                ),
                success=(On(PaymentAuthorized, _authorized),),
                failure=(On(PaymentDeclined),),
                compensation=Compensation(
                    command=Command(
                        VoidPayment,
                        "payments",
                        lambda d: VoidPayment(
                            order_id=d.order_id, authorization_id=d.authorization_id or ""
                        ),
                    ),
                    success=(PaymentVoided,),
                ),
                timeout=timedelta(seconds=20),
                retry=RetryPolicy(max_attempts=1),
            ),
        ),
    )


def app_of(*sagas: Saga[Any]) -> App:
    """The example app's contracts with these sagas only (and no participants)."""
    return replace(examples, name="tests", sagas=sagas, participants=())


def order_placed(order_id: str) -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id="c-1",
        items=(OrderLine(sku="sku-1", quantity=2, unit_price=Decimal("5.00")),),
        total=Decimal("10.00"),
        currency="EUR",
        shipping_address=Address(
            recipient="Ada",
            line1="1 Main St",
            line2=None,
            city="Oslo",
            postal_code="0150",
            country="NO",
        ),
        placed_at=datetime.now(UTC),
    )


def reply_for(command: Record) -> Record:
    """Scripted participants: the order id's suffix decides the outcome."""
    order_id: str = command.order_id
    if isinstance(command, ReserveStock):
        if order_id.endswith("nostock"):
            return StockUnavailable(order_id=order_id, sku="sku-1", requested=2, available=0)
        return StockReserved(order_id=order_id, reservation_id=f"r-{order_id}")
    if isinstance(command, AuthorizePayment):
        if order_id.endswith("declined"):
            return PaymentDeclined(order_id=order_id, reason=DeclineReason.INSUFFICIENT_FUNDS)
        return PaymentAuthorized(
            order_id=order_id,
            authorization_id=f"a-{order_id}",
            amount=command.amount,
            currency="EUR",
        )
    if isinstance(command, ReleaseStock):
        return StockReleased(order_id=order_id, reservation_id=command.reservation_id)
    if isinstance(command, VoidPayment):
        return PaymentVoided(order_id=order_id, authorization_id=command.authorization_id)
    raise AssertionError(f"unexpected command {command!r}")


class Participants:
    """Answers commands on ``<prefix>inventory.commands`` and ``<prefix>payments.commands``."""

    def __init__(self, bootstrap: str, prefix: str, codec: Codec) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.codec = codec
        self.commands: list[Envelope] = []

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            f"{self.prefix}inventory.commands",
            f"{self.prefix}payments.commands",
            bootstrap_servers=self.bootstrap,
            group_id=f"participants-{uuid.uuid4().hex[:6]}",
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        await consumer.start()
        await producer.start()
        try:
            async for record in consumer:
                command = self.codec.decode(record.headers, record.value)
                self.commands.append(command)
                assert command.reply_to is not None
                reply = Envelope(
                    id=f"{command.id}:reply",
                    type=reply_for(command.payload).SCHEMA,
                    source="/tests/participants",
                    time=datetime.now(UTC),
                    payload=reply_for(command.payload),
                    saga_id=command.saga_id,
                )
                headers, value = self.codec.encode(reply)
                # Keyed like the command, as a participant must (the saga's partition).
                await producer.send_and_wait(
                    command.reply_to, value, key=record.key, headers=headers
                )
        finally:
            await consumer.stop()
            await producer.stop()

    def sent(self, order_id: str) -> list[str]:
        """The command types the engine sent for one order, in order."""
        return [c.type for c in self.commands if getattr(c.payload, "order_id", None) == order_id]


async def publish(bootstrap: str, topic: str, codec: Codec, records: list[Record]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for record in records:
            envelope = Envelope(
                id=str(uuid.uuid4()),
                type=record.SCHEMA,
                source="/tests",
                time=datetime.now(UTC),
                payload=record,
            )
            headers, value = codec.encode(envelope)
            await producer.send(
                topic, value, key=getattr(record, "order_id", "").encode(), headers=headers
            )
        await producer.flush()
    finally:
        await producer.stop()


def engine_settings(tmp: Path, prefix: str, **overrides: Any) -> EngineSettings:
    values: dict[str, Any] = {
        "topic_prefix": prefix,
        "partitions": 3,
        "engine_db": tmp / "engine.db",
        "engine_group": f"{prefix}engine",
        "transactional_prefix": prefix,
        "session_timeout": timedelta(seconds=6),
        "hold_unknown_for": timedelta(seconds=30),
    }
    values.update(overrides)
    return EngineSettings(**values)


@asynccontextmanager
async def running_engine(
    bootstrap: str, definitions: list[Saga[Any]], settings: EngineSettings
) -> AsyncIterator[tuple[Engine, Store]]:
    codec = examples.codec()
    store = await Store.open(settings.engine_db)
    engine = Engine(
        definitions,
        settings,
        transport=KafkaTransport(bootstrap, settings.topic_prefix),
        codec=codec,
        classes=examples.classes,
        store=store,
    )
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(engine.run())
            yield engine, store
            engine.shutdown()
    finally:
        await store.close()
        codec.close()


async def wait_for(predicate: Any, deadline_s: float, what: str) -> None:
    """Poll an async predicate until true; fail with ``what`` after the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not await predicate():
        if loop.time() > end:
            raise AssertionError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(0.2)  # polling interval of a condition with a deadline


async def committed_count(bootstrap: str, topic: str) -> int:
    """How many committed records ``topic`` holds (the sum of its last stable offsets)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(topic)
        assert parts, f"no partitions known for {topic}"  # never a vacuous 0
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
        return sum(ends.values())
    finally:
        await consumer.stop()
