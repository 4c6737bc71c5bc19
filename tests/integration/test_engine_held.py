"""Messages that overtake their saga's start are held, then applied or dead-lettered."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from sagas.contracts.record import Envelope
from services.app import app as examples
from services.messages.inventory import StockReserved
from tests.integration.engine_support import (
    Participants,
    engine_settings,
    order_placed,
    publish,
    running_engine,
    two_step_saga,
    wait_for,
)


async def _reply_before_start(bootstrap: str, inbox: str, order_id: str) -> None:
    """A StockReserved for ``order:<order_id>`` that reaches the inbox first."""
    codec = examples.codec()
    envelope = Envelope(
        id=f"order:{order_id}:reserve_stock:1:reply",
        type=StockReserved.SCHEMA,
        source="/tests",
        time=datetime.now(UTC),
        payload=StockReserved(order_id=order_id, reservation_id=f"r-{order_id}"),
        saga_id=f"order:{order_id}",
    )
    headers, value = codec.encode(envelope)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            inbox, value, key=f"order:{order_id}".encode(), headers=headers
        )
    finally:
        await producer.stop()
        codec.close()


async def test_early_reply_is_held_then_applied_or_dead_lettered(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    saga = two_step_saga("held_test")
    settings = engine_settings(
        tmp_path, prefix, partitions=1, hold_unknown_for=timedelta(seconds=3)
    )
    codec = examples.codec()
    participants = Participants(kafka_bootstrap, prefix, codec)
    inbox = f"{prefix}{saga.inbox}"
    async with (
        running_engine(kafka_bootstrap, [saga], settings) as (_engine, store),
        asyncio.TaskGroup() as tg,
    ):
        task = tg.create_task(participants.run())
        await wait_for(lambda: _has_topic(kafka_bootstrap, inbox), 60, "the inbox to exist")
        await _reply_before_start(kafka_bootstrap, inbox, "early")
        await _reply_before_start(kafka_bootstrap, inbox, "never")

        async def held() -> bool:
            return await store.held(saga.name, "order:early") is not None

        await wait_for(held, 30, "the early reply to be held")
        await publish(kafka_bootstrap, f"{prefix}orders.events", codec, [order_placed("early")])

        async def completed() -> bool:
            return (await store.counts_by_state(saga.name)).get("COMPLETED", 0) == 1

        await wait_for(completed, 60, "the saga with the held reply to complete")
        history = await store.history(saga.name, "order:early")

        async def expired() -> bool:
            return await store.held(saga.name, "order:never") is None

        await wait_for(expired, 60, "the reply for a saga that never starts to expire")
        task.cancel()
    # The held reply was applied right after the start: the engine never had to wait
    # for the participant's own (duplicate) reply to reserve the stock.
    assert [h["type"] for h in history][:2] == ["orders.OrderPlaced", "inventory.StockReserved"]
    dead = await _read_one(kafka_bootstrap, f"{prefix}sagas.{saga.name}.dlq")
    assert dict(dead.headers)["dlq_reason"] == b"saga-not-started"
    assert dead.key == b"order:never"
    codec.close()


async def _has_topic(bootstrap: str, topic: str) -> bool:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return topic in await consumer.topics()
    finally:
        await consumer.stop()


async def _read_one(bootstrap: str, topic: str) -> ConsumerRecord[Any, Any]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record: ConsumerRecord[Any, Any] = await asyncio.wait_for(consumer.getone(), 30)
        return record
    finally:
        await consumer.stop()
