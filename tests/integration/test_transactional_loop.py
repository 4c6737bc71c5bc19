"""The engine's loop on Kafka relays exactly once, also when members come and go."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sagas.runtime.transport.kafka import KafkaTransport
from sagas.runtime.units import Ownership
from tests.conftest import MakeTopic
from tests.integration.engine_support import wait_for
from tests.loop_support import Relay, relay_loop


async def _produce(bootstrap: str, topic: str, n: int) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for i in range(n):
            await producer.send(topic, f"v{i}".encode(), key=f"k{i % 17}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _read_committed(bootstrap: str, topic: str, n: int, deadline_s: float) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[bytes] = []
    try:
        async with asyncio.timeout(deadline_s):
            while len(out) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(r.value for r in records)
        # Anything beyond n would be a duplicate: give it one more poll to show up.
        for records in (await consumer.getmany(timeout_ms=1500)).values():
            out.extend(r.value for r in records)
    finally:
        await consumer.stop()
    return out


async def test_relay_exactly_once(kafka_bootstrap: str, make_topic: MakeTopic) -> None:
    src = await make_topic("in", partitions=3)
    dst = await make_topic("out", partitions=3)
    await _produce(kafka_bootstrap, src, 300)
    relay = Relay(dst)
    transport = KafkaTransport(kafka_bootstrap)
    loop = relay_loop(
        transport, f"g-{uuid.uuid4().hex[:8]}", [src], relay, f"relay-{uuid.uuid4().hex[:8]}"
    )
    async with asyncio.TaskGroup() as tg:
        tg.create_task(loop.run())
        out = await _read_committed(kafka_bootstrap, dst, 300, deadline_s=60)
        loop.stop()
    assert sorted(out) == sorted(f"v{i}".encode() for i in range(300))
    assert relay.committed_records == 300
    assert set(relay.taken) == {0, 1, 2}


async def test_second_member_takes_over_without_duplicates(
    kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    src = await make_topic("in", partitions=4)
    dst = await make_topic("out", partitions=1)
    group, prefix = f"g-{uuid.uuid4().hex[:8]}", f"relay-{uuid.uuid4().hex[:8]}"
    transport = KafkaTransport(kafka_bootstrap)
    first = relay_loop(transport, group, [src], Relay(dst), prefix)
    second_relay = Relay(dst)
    second = relay_loop(transport, group, [src], second_relay, prefix)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(first.run())
        await _produce(kafka_bootstrap, src, 200)
        tg.create_task(second.run())
        async with asyncio.timeout(60):
            await second_relay.has_units.wait()
        await _produce(kafka_bootstrap, src, 200)
        first.stop()
        out = await _read_committed(kafka_bootstrap, dst, 400, deadline_s=90)
        second.stop()
    assert len(out) == 400
    assert len(set(out)) == 200  # v0..v199 twice: once per produce round
    assert sorted(out) == sorted([f"v{i}".encode() for i in range(200)] * 2)


async def test_a_fenced_unit_the_group_still_counts_as_its_owner_takes_it_back(
    kafka_bootstrap: str, make_topic: MakeTopic
) -> None:
    src = await make_topic("in", partitions=1)
    dst = await make_topic("out", partitions=1)
    prefix = f"relay-{uuid.uuid4().hex[:8]}"
    relay = Relay(dst)
    group = f"g-{uuid.uuid4().hex[:8]}"
    loop = relay_loop(KafkaTransport(kafka_bootstrap), group, [src], relay, prefix)
    async with asyncio.TaskGroup() as tg:
        running = tg.create_task(loop.run())
        async with asyncio.timeout(60):
            await loop.ready.wait()
        # Producers outside the group (as a zombie of it would) initialise the unit's
        # transactional ids: the loop's writes are refused.
        usurpers = [
            AIOKafkaProducer(
                bootstrap_servers=kafka_bootstrap, transactional_id=f"{prefix}.{group}.0.{i}"
            )
            for i in range(3)
        ]
        for usurper in usurpers:
            await usurper.start()
        await _produce(kafka_bootstrap, src, 5)

        async def fenced() -> bool:  # the loop notices the fence when it commits
            return loop.units[0].state is Ownership.FENCED

        await wait_for(fenced, 60, "the loop to notice the fence")
        assert not running.done()  # a fenced producer does not bring the process down
        assert relay.committed_records == 0  # nothing of the fenced transaction committed
        # The group still counts the loop the unit's owner: it takes the unit back
        # (fencing the usurpers) rather than leave the partition standing still.
        out = await _read_committed(kafka_bootstrap, dst, 5, deadline_s=60)
        assert loop.units[0].state is Ownership.OWNED
        assert relay.committed_records == 5  # once each
        loop.stop()
        for usurper in usurpers:
            await usurper.stop()
    assert sorted(out) == sorted(f"v{i}".encode() for i in range(5))
