"""Input limits on the real broker: oversized messages and missing or forged CloudEvents
headers reach the engine inbox, a participant's command topic and the read model's
topics; each ends in that consumer's dead-letter topic with its reason, and a valid
message after them is handled as usual.

The size limit is the operator's setting (``SAGAS_MAX_PAYLOAD_BYTES``, set small here),
read by every process's codec from the environment.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import SagaStarted
from sagas.contracts.record import Envelope, Record
from sagas.ops.readmodel import Follower, OpsStore
from sagas.participant.testing import Wire, read_all, running
from sagas.runtime import topics
from sagas.runtime.topics import TopicSpec, ensure_topics
from services import inventory
from services.app import app as examples
from services.messages.inventory import ReserveStock, StockItem, StockReserved
from services.messages.orders import OrderFulfilled
from tests.conftest import MakeTopic
from tests.integration.engine_support import (
    Participants,
    engine_settings,
    order_placed,
    publish,
    running_engine,
    two_step_saga,
    wait_for,
)

pytestmark = pytest.mark.kafka

LIMIT = 64 * 1024
Headers = list[tuple[str, bytes]]
BAD_REASONS = ["payload-too-large", "header-missing", "header-duplicate", "type-mismatch"]


@pytest.fixture
def small_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGAS_MAX_PAYLOAD_BYTES", str(LIMIT))


def bad_copies(headers: Headers, value: bytes) -> list[tuple[Headers, bytes]]:
    """Four bad versions of a valid message, in the order of `BAD_REASONS`."""
    forged_type = OrderFulfilled.SCHEMA.encode()
    ce_type = next(v for k, v in headers if k == "ce_type")
    return [
        (headers, value[:5] + b"\x00" * (LIMIT + 1)),
        ([(k, v) for k, v in headers if k != "ce_id"], value),
        ([*headers, ("ce_type", ce_type)], value),
        ([(k, forged_type if k == "ce_type" else v) for k, v in headers], value),
    ]


def envelope(payload: Record, **kw: Any) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=payload.SCHEMA,
        source="/tests",
        time=datetime.now(UTC),
        payload=payload,
        **kw,
    )


async def send_all(bootstrap: str, topic: str, messages: list[tuple[Headers, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for headers, value in messages:
            await producer.send_and_wait(topic, value, key=b"order:bad", headers=headers)
    finally:
        await producer.stop()


def reasons(records: list[Any]) -> list[str]:
    return [dict(r.headers)["dlq_reason"].decode() for r in records]


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("small_limit")
async def test_the_engine_inbox_dead_letters_bad_input_and_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    saga = two_step_saga("limits_test")
    settings = engine_settings(tmp_path, prefix, partitions=1)
    with examples.codec() as codec:
        assert codec.max_payload_bytes == LIMIT
        participants = Participants(kafka_bootstrap, prefix, codec)
        good = codec.encode(envelope(order_placed("o-bad"), saga_id="order:o-bad"))
        async with (
            running_engine(kafka_bootstrap, [saga], settings) as (_engine, store),
            asyncio.TaskGroup() as tg,
        ):
            task = tg.create_task(participants.run())
            await send_all(kafka_bootstrap, f"{prefix}{saga.inbox}", bad_copies(*good))
            await publish(kafka_bootstrap, f"{prefix}orders.events", codec, [order_placed("ok")])

            async def completed() -> bool:
                return (await store.counts_by_state(saga.name)).get("COMPLETED", 0) == 1

            await wait_for(completed, 90, "the valid saga after the bad input to complete")
            task.cancel()
        dead = await read_all(kafka_bootstrap, f"{prefix}sagas.{saga.name}.dlq", 4)
    assert reasons(dead) == BAD_REASONS
    assert all(dict(d.headers)["dlq_topic"] == f"{prefix}{saga.inbox}".encode() for d in dead)
    assert len(dead[0].value) == LIMIT + 6  # the original bytes, kept as they came


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("small_limit")
async def test_a_participant_dead_letters_bad_commands_and_goes_on(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    commands = f"{prefix}inventory.commands"
    replies = await make_topic("replies")
    with examples.codec() as codec:
        async with (
            running(inventory.participant(), kafka_bootstrap, tmp_path, codec, prefix),
            Wire(kafka_bootstrap, codec, replies) as wire,
        ):
            command = ReserveStock(order_id="o-1", items=(StockItem(sku="SKU-1", quantity=1),))
            good = wire.encode(command, "order:o-bad:reserve:1", "order:o-bad")
            await send_all(kafka_bootstrap, commands, bad_copies(*good))
            await wire.send(commands, command, "order:o-1:reserve:1", "order:o-1")
            got = await wire.replies_until(lambda r: len(r) == 1)
            assert isinstance(got[0].payload, StockReserved)
            dead = await read_all(kafka_bootstrap, f"{prefix}inventory.dlq", 4)
    assert reasons(dead) == BAD_REASONS
    assert all(dict(d.headers)["dlq_topic"] == commands.encode() for d in dead)


@pytest.mark.timeout(180)
@pytest.mark.usefixtures("small_limit")
async def test_the_read_model_dead_letters_what_it_cannot_read_and_goes_on(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    outcomes = prefix + topics.OUTCOMES
    changelog = f"{prefix}sagas.limits_rm.changelog"
    dlq = prefix + topics.READ_MODEL_DEAD_LETTERS
    specs = [TopicSpec(outcomes, 1), TopicSpec(changelog, 1), TopicSpec(dlq, 1)]
    await ensure_topics(kafka_bootstrap, specs, 1)
    started = SagaStarted(
        saga_id="order:rm-1",
        saga_name="limits_rm",
        saga_version=1,
        at=datetime.now(UTC),
        trigger="orders.OrderPlaced",
    )
    with examples.codec() as codec:
        good = codec.encode(envelope(started))
        await send_all(kafka_bootstrap, outcomes, bad_copies(*good))
        await send_all(kafka_bootstrap, changelog, [([], b"{not json")])
        await send_all(kafka_bootstrap, outcomes, [good])
        store = await OpsStore.open(tmp_path / "ops.db")
        try:
            await _follow_until_read(kafka_bootstrap, store, codec, prefix)
            seen = await store.outcomes_since("2000-01-01T00:00:00Z")
        finally:
            await store.close()
        dead = await read_all(kafka_bootstrap, dlq, 5)
    assert [(o.type, o.saga_id) for o in seen] == [("SagaStarted", "order:rm-1")]
    assert sorted(reasons(dead)) == sorted([*BAD_REASONS, "changelog-invalid"])
    origins = {dict(d.headers)["dlq_topic"].decode() for d in dead}
    assert origins == {outcomes, changelog}


async def _follow_until_read(bootstrap: str, store: OpsStore, codec: Codec, prefix: str) -> None:
    async with Follower(store, bootstrap, codec, topic_prefix=prefix) as follower:
        await follower.discover()

        async def done() -> bool:
            await follower.poll(wait=0.5)
            return follower.dead_lettered == 5 and bool(
                await store.outcomes_since("2000-01-01T00:00:00Z")
            )

        await wait_for(done, 60, "the read model to take in the valid outcome")
