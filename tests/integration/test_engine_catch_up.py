"""Catch-up from the changelog builds exactly the store the live engine built.

A live engine runs a few hundred sagas (completed, compensated, one held message then
applied, one held for good); a fresh store then catches up from the changelog in small
slices and must hold the same instances, history and held messages, each instance equal
to the latest changelog record of its saga. The same run checks that the engine keeps
no saga instance in memory once its batch is written (memory does not grow with the
number of sagas it has seen).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from sagas.machine import SagaInstance
from sagas.runtime import topics
from sagas.runtime.changelog import HELD_PREFIX, catch_up, instance_of
from sagas.runtime.store import Store
from sagas.runtime.transport.kafka import KafkaTransport
from sagas.runtime.transport.records import TP
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
from tests.integration.test_engine_held import _has_topic, _reply_before_start

SAGAS = 300
PARTITIONS = 2
MAX_BATCH = 40
CACHE = 50  # SAGAS_INSTANCE_CACHE, far below SAGAS


def _dump(db: Path) -> dict[str, Any]:
    """Every row of the store's saga tables, JSON columns decoded."""
    with contextlib.closing(sqlite3.connect(db)) as c:
        instances = {
            r[1]: (*r[:9], json.loads(r[9]))
            for r in c.execute(
                "SELECT saga_name, saga_id, partition, version, state, started_at, updated_at,"
                " ended_at, next_due, body FROM instances"
            )
        }
        held = {
            r[1]: (r[0], r[2], r[3], json.loads(r[4]))
            for r in c.execute(
                "SELECT saga_name, saga_id, partition, expires_at, messages FROM held"
            )
        }
    return {"instances": instances, "held": held}


async def _latest_records(bootstrap: str, topic: str) -> tuple[dict[bytes, bytes | None], int]:
    """The last record of every key on ``topic`` and the total of its end offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        latest: dict[bytes, bytes | None] = {}
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for record in batch.get(tp, []):
                    assert record.key is not None
                    latest[record.key] = record.value
        return latest, sum(ends.values())
    finally:
        await consumer.stop()


@pytest.mark.timeout(400)
async def test_catch_up_rebuilds_the_live_store(kafka_bootstrap: str, tmp_path: Path) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    saga = two_step_saga("catch_up_test")
    live_dir = tmp_path / "live"
    settings = engine_settings(
        live_dir,
        prefix,
        partitions=PARTITIONS,
        max_batch=MAX_BATCH,
        hold_unknown_for=timedelta(minutes=30),
        instance_cache=CACHE,
    )
    codec = examples.codec()
    participants = Participants(kafka_bootstrap, prefix, codec)
    inbox = f"{prefix}{saga.inbox}"
    suffixes = ("", "", "-declined", "-nostock")
    orders = [order_placed(f"c{i}{suffixes[i % len(suffixes)]}") for i in range(SAGAS)]
    async with (
        running_engine(kafka_bootstrap, [saga], settings) as (engine, store),
        asyncio.TaskGroup() as tg,
    ):
        task = tg.create_task(participants.run())
        await wait_for(lambda: _has_topic(kafka_bootstrap, inbox), 60, "the inbox to exist")
        await _reply_before_start(kafka_bootstrap, inbox, "early")
        await _reply_before_start(kafka_bootstrap, inbox, "never")

        async def both_held() -> bool:
            return all(
                [
                    await store.held(saga.name, "order:early") is not None,
                    await store.held(saga.name, "order:never") is not None,
                ]
            )

        await wait_for(both_held, 60, "the early replies to be held")
        await publish(
            kafka_bootstrap, f"{prefix}orders.events", codec, [order_placed("early"), *orders]
        )

        async def all_ended() -> bool:
            counts = await store.counts_by_state(saga.name)
            return sum(counts.get(s, 0) for s in ("COMPLETED", "COMPENSATED")) == SAGAS + 1

        await wait_for(all_ended, 300, "every saga to end")
        # Bounded memory: beyond the instance cache, no instance outlives the batch that
        # decided on it.
        gc.collect()
        alive = sum(1 for o in gc.get_objects() if isinstance(o, SagaInstance))
        assert alive <= CACHE + MAX_BATCH < SAGAS, f"{alive} saga instances kept in memory"
        assert len(engine.worker.cache) == CACHE  # it was used, and stayed in its bound
        task.cancel()
    codec.close()

    live = _dump(settings.engine_db)
    assert len(live["instances"]) == SAGAS + 1
    assert set(live["held"]) == {"order:never"}

    fresh_db = tmp_path / "fresh" / "engine.db"
    changelog_topic = prefix + topics.changelog(saga.name)
    reader = KafkaTransport(kafka_bootstrap, prefix).partition_reader()
    fresh = await Store.open(fresh_db)
    try:
        read = 0
        for partition in range(PARTITIONS):
            tp = TP(topics.changelog(saga.name), partition)
            read += await catch_up(reader, fresh, saga.name, tp, chunk=64)
        offsets = [await fresh.next_changelog_offset(saga.name, p) for p in range(PARTITIONS)]
    finally:
        await reader.close()
        await fresh.close()

    latest, end = await _latest_records(kafka_bootstrap, changelog_topic)
    assert sum(offsets) == end  # every offset applied, transaction markers included
    assert read > 3 * SAGAS  # several records per saga: later ones must win
    assert _dump(fresh_db) == live
    for key, value in latest.items():
        if key.startswith(HELD_PREFIX):
            continue
        assert value is not None
        expected = instance_of(value)
        row = live["instances"][expected.saga_id]
        assert row[:9] == (
            expected.saga_name,
            expected.saga_id,
            expected.partition,
            expected.version,
            expected.state,
            expected.started_at,
            expected.updated_at,
            expected.ended_at,
            expected.next_due,
        )
        assert row[9] == expected.body
