"""The pinned broker does what the engine relies on: idempotence and transactions."""

from __future__ import annotations

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.conftest import MakeTopic


async def _read_all(bootstrap: str, topic: str, expect: int) -> list[bytes]:
    """Read with read_committed until ``expect`` values or the end of the topic."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        while len(values) < expect:
            batch = await consumer.getmany(timeout_ms=2000)
            if not batch:
                break  # nothing more became visible within the poll window
            for records in batch.values():
                values.extend(r.value for r in records if r.value is not None)
    finally:
        await consumer.stop()
    return values


async def test_idempotent_producer_round_trip(kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    topic = await make_topic("idem")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(20):
            await producer.send_and_wait(topic, f"v{i}".encode(), key=b"k")
    finally:
        await producer.stop()
    values = await _read_all(kafka_bootstrap, topic, 20)
    assert values == [f"v{i}".encode() for i in range(20)]


async def test_committed_transaction_visible_aborted_not(
    kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    topic = await make_topic("txn")
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"test-{uuid.uuid4().hex}"
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send(topic, b"committed-1")
            await producer.send(topic, b"committed-2")
        await producer.begin_transaction()
        await producer.send(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"committed-3")
    finally:
        await producer.stop()
    values = await _read_all(kafka_bootstrap, topic, 4)
    assert values == [b"committed-1", b"committed-2", b"committed-3"]
