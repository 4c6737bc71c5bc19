"""The engine end to end on the real broker: route, decide, compensate, dead-letter."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.app import app as examples
from tests.integration.engine_support import (
    Participants,
    engine_settings,
    order_placed,
    publish,
    running_engine,
    two_step_saga,
    wait_for,
)


async def test_orders_complete_or_compensate(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    saga = two_step_saga("orders_test")
    settings = engine_settings(tmp_path, prefix)
    codec = examples.codec()
    participants = Participants(kafka_bootstrap, prefix, codec)
    ids = {"ok": "o1", "nostock": "o2-nostock", "declined": "o3-declined"}
    async with running_engine(kafka_bootstrap, [saga], settings) as (_engine, store):
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(participants.run())
            await publish(
                kafka_bootstrap,
                f"{prefix}orders.events",
                codec,
                [order_placed(i) for i in ids.values()],
            )

            async def all_ended() -> bool:
                counts = await store.counts_by_state(saga.name)
                return counts.get("COMPLETED", 0) + counts.get("COMPENSATED", 0) == 3

            await wait_for(all_ended, 60, "three sagas to end")
            task.cancel()
        states = {
            k: (await store.get(saga.name, f"order:{v}") or {}).get("state") for k, v in ids.items()
        }
        history = await store.history(saga.name, "order:o3-declined")
    assert states == {"ok": "COMPLETED", "nostock": "COMPENSATED", "declined": "COMPENSATED"}
    assert participants.sent("o1") == ["inventory.ReserveStock", "payments.AuthorizePayment"]
    # Nothing succeeded, nothing to compensate.
    assert participants.sent("o2-nostock") == ["inventory.ReserveStock"]
    # The reservation succeeded, the payment did not: only the reservation is released.
    assert participants.sent("o3-declined") == [
        "inventory.ReserveStock",
        "payments.AuthorizePayment",
        "inventory.ReleaseStock",
    ]
    assert history[0]["type"] == "orders.OrderPlaced"
    assert len(history) >= 4  # start, two replies, the compensation reply
    codec.close()


async def test_poison_message_goes_to_dlq_and_partition_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    saga = two_step_saga("poison_test")
    settings = engine_settings(tmp_path, prefix, partitions=1)
    codec = examples.codec()
    participants = Participants(kafka_bootstrap, prefix, codec)
    async with (
        running_engine(kafka_bootstrap, [saga], settings) as (_engine, store),
        asyncio.TaskGroup() as tg,
    ):
        task = tg.create_task(participants.run())
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                f"{prefix}{saga.inbox}",
                b"\x00garbage",
                key=b"order:x",
                headers=[("ce_type", b"nope")],
            )
        finally:
            await producer.stop()
        await publish(
            kafka_bootstrap, f"{prefix}orders.events", codec, [order_placed("after-poison")]
        )

        async def ended() -> bool:
            return (await store.counts_by_state(saga.name)).get("COMPLETED", 0) == 1

        await wait_for(ended, 60, "the saga after the poison message to complete")
        task.cancel()
    consumer = AIOKafkaConsumer(
        f"{prefix}sagas.{saga.name}.dlq",
        bootstrap_servers=kafka_bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), 30)
    finally:
        await consumer.stop()
    headers = dict(record.headers)
    assert record.value == b"\x00garbage"
    assert headers["dlq_reason"]
    assert headers["dlq_topic"] == f"{prefix}{saga.inbox}".encode()
    codec.close()
