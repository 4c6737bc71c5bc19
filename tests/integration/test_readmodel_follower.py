"""The read model's follower (`sagas.ops.readmodel.follower`) on the real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from sagas.contracts.fake_registry import FakeRegistry
from sagas.contracts.messages.sagas import SagaStarted
from sagas.contracts.record import Envelope
from sagas.contracts.settings import ContractSettings
from sagas.ops.readmodel import Follower, OpsStore
from sagas.runtime import topics
from sagas.runtime.topics import TopicSpec, ensure_topics
from services.app import app as examples
from tests.integration.engine_support import committed_count, wait_for

pytestmark = pytest.mark.kafka

EPOCH = "2000-01-01T00:00:00Z"


def started(saga_id: str) -> Envelope:
    payload = SagaStarted(
        saga_id=saga_id,
        saga_name="outage_rm",
        saga_version=1,
        at=datetime.now(UTC),
        trigger="orders.OrderPlaced",
    )
    return Envelope(
        id=str(uuid.uuid4()),
        type=payload.SCHEMA,
        source="/tests",
        time=datetime.now(UTC),
        payload=payload,
    )


@pytest.mark.timeout(180)
async def test_a_registry_outage_delays_outcomes_and_dead_letters_none(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    outcomes = prefix + topics.OUTCOMES
    dlq = prefix + topics.READ_MODEL_DEAD_LETTERS
    await ensure_topics(kafka_bootstrap, [TopicSpec(outcomes, 1), TopicSpec(dlq, 1)], 1)
    registry = FakeRegistry()
    contracts = ContractSettings(schema_registry_url="http://registry.test")
    saga_ids = [f"order:rm-{i}" for i in range(3)]
    with (
        examples.codec(contracts, transport=registry.transport()) as engine,
        examples.codec(contracts, transport=registry.transport()) as reader,
    ):
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=True)
        await producer.start()
        try:
            for saga_id in saga_ids:
                headers, value = engine.encode(started(saga_id))
                await producer.send_and_wait(outcomes, value, key=b"k", headers=headers)
        finally:
            await producer.stop()
        store = await OpsStore.open(tmp_path / "ops.db")
        try:
            async with Follower(store, kafka_bootstrap, reader, topic_prefix=prefix) as follower:
                await follower.discover()
                registry.fail_with = 503  # down: the read model has not seen SagaStarted yet

                async def waited() -> bool:
                    await follower.poll(wait=0.5)
                    return follower.dead_lettered > 0 or follower.registry.waits >= 2

                await wait_for(waited, 60, "the follower to wait on the registry")
                assert follower.dead_lettered == 0
                assert await store.outcomes_since(EPOCH) == []
                registry.fail_with = None  # back

                async def all_read() -> bool:
                    await follower.poll(wait=0.5)
                    return len(await store.outcomes_since(EPOCH)) == len(saga_ids)

                await wait_for(all_read, 60, "the outcomes once the registry is back")
                assert follower.dead_lettered == 0
            seen = await store.outcomes_since(EPOCH)
        finally:
            await store.close()
    assert [o.saga_id for o in seen] == saga_ids
    assert await committed_count(kafka_bootstrap, dlq) == 0
