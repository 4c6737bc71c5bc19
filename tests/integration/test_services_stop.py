"""A participant service stops within seconds of SIGTERM, its offsets at the end of what
it processed: nothing it answered is delivered again, nothing it did not answer is
skipped. Both runners: aiokafka (the default) and faust. The service runs as the chaos
entry point (`sagas serve NAME` plus the latency fault), so that SIGTERM comes while it
is busy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata

from sagas.contracts.codec import Codec
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.participant.testing import Wire, new_prefix, read_all
from services.app import app as examples
from services.messages.inventory import ReserveStock, StockItem
from tests.conftest import MakeTopic

pytestmark = pytest.mark.kafka

PARTITIONS = 3
STOP_WITHIN = timedelta(seconds=5)
ANSWERED = 100
"""Commands answered before the burst that SIGTERM interrupts."""
BURST = 300
LATENCY = "0.005"
"""Seconds each command takes (the latency fault, ``SAGAS_CHAOS_SERVICE_LATENCY``): the
burst takes 1.5 s, so SIGTERM comes while the service is in the middle of it."""


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


def reserve(order_id: str) -> ReserveStock:
    return ReserveStock(order_id=order_id, items=(StockItem(sku="SKU-1", quantity=1),))


async def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


async def records_in(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(PARTITIONS)])
    finally:
        await consumer.stop()
    return sum(ends.values())


@pytest.mark.timeout(240)
@pytest.mark.parametrize("runner", ["aiokafka", "faust"])
async def test_sigterm_stops_the_service_with_its_offsets_committed(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec, runner: str
) -> None:
    prefix = new_prefix()
    commands = f"{prefix}inventory.commands"
    replies = await make_topic("replies", partitions=PARTITIONS)
    layout = SystemLayout(
        kafka_bootstrap,
        tmp_path,
        prefix,
        partitions=PARTITIONS,
        extra_env={"SERVICE_RUNNER": runner},
    )
    sent: dict[str, RecordMetadata] = {}
    with Supervisor(tmp_path / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        seed = {"stock": {"SKU-1": 10_000}}
        spec = system.service_spec("inventory", seed, faults={"latency": LATENCY})
        service = system.start(spec)
        async with Wire(kafka_bootstrap, codec, replies) as wire:

            async def send(i: int) -> asyncio.Future[RecordMetadata]:
                headers, value = wire.encode(reserve(f"o-{i}"), f"c-{i}", f"order:o-{i}")
                key = f"order:o-{i}".encode()
                return await wire.producer.send(commands, value, key=key, headers=headers)

            # Consuming: the answers to a first round of commands all came back.
            first = [await send(i) for i in range(ANSWERED)]
            await wire.replies_until(lambda got: len(got) == ANSWERED, within=120)
            # A burst the service is in the middle of when SIGTERM comes.
            burst = [await send(i) for i in range(ANSWERED, ANSWERED + BURST)]
            await wire.producer.flush()
            await wire.replies_until(lambda got: len(got) > ANSWERED, within=120)
            for i, future in enumerate(first + burst):
                sent[f"c-{i}"] = future.result()
            began = time.monotonic()
            code = await asyncio.to_thread(supervisor.stop, service.spec.name, STOP_WITHIN)
            took = time.monotonic() - began

    log = service.log.read_text(errors="replace")
    assert code == 0, log[-3000:]
    assert service.killed_after_term == 0
    assert took < STOP_WITHIN.total_seconds()
    assert "Not in the middle of a transaction" not in log
    assert "Traceback" not in log, log[-3000:]
    assert "inventory: injecting faults" in log  # the latency wrapper was in place

    committed = await committed_offsets(kafka_bootstrap, f"{prefix}inventory-service")
    assert set(committed) == set(range(PARTITIONS))
    below = {c for c, m in sent.items() if m.offset < committed[m.partition]}
    assert len(below) > ANSWERED  # the first round, and what the burst got answered
    # Exactly what was committed was answered (each once): nothing answered is left
    # behind the committed offsets, nothing unanswered is before them.
    answered = await read_all(kafka_bootstrap, replies, len(below))
    assert sorted(dict(r.headers)["in_reply_to"].decode() for r in answered) == sorted(below)
    assert await records_in(kafka_bootstrap, replies) == len(below)
