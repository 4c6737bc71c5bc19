"""Consumer groups on the pinned broker: how engines and participants scale out."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from tests.conftest import MakeTopic


def _member(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


@pytest.mark.kafka
async def test_two_members_split_the_partitions(
    kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    topic = await make_topic("split", partitions=4)
    first, second = (_member(kafka_bootstrap, topic, f"g-{topic}") for _ in range(2))
    async with first, second, asyncio.timeout(60):
        # Poll both until the group has settled on one assignment for both members.
        while True:
            await asyncio.gather(first.getmany(timeout_ms=200), second.getmany(timeout_ms=200))
            a = {tp.partition for tp in first.assignment()}
            b = {tp.partition for tp in second.assignment()}
            if a and b and not a & b and a | b == {0, 1, 2, 3}:
                break
    assert len(a) == len(b) == 2


@pytest.mark.kafka
async def test_a_new_member_resumes_at_the_committed_offset(
    kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    topic = await make_topic("resume")
    group = f"g-{topic}"
    tp = TopicPartition(topic, 0)
    async with AIOKafkaProducer(bootstrap_servers=kafka_bootstrap) as producer:
        for i in range(10):
            await producer.send_and_wait(topic, f"r{i}".encode())

    async with _member(kafka_bootstrap, topic, group) as first, asyncio.timeout(60):
        seen: list[ConsumerRecord[bytes, bytes]] = []
        while len(seen) < 4:
            batch = await first.getmany(tp, timeout_ms=500, max_records=4 - len(seen))
            seen.extend(batch.get(tp, []))
        await first.commit({tp: seen[-1].offset + 1})

    async with _member(kafka_bootstrap, topic, group) as second, asyncio.timeout(60):
        assert await second.committed(tp) == 4
        rest: list[ConsumerRecord[bytes, bytes]] = []
        while len(rest) < 6:
            rest.extend((await second.getmany(timeout_ms=500)).get(tp, []))

    assert [r.value for r in seen] == [b"r0", b"r1", b"r2", b"r3"]
    assert [r.value for r in rest] == [f"r{i}".encode() for i in range(4, 10)]
