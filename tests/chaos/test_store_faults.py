"""A full, then a read-only SQLite store under load, on the real broker.

The engine runs in-process as the chaos entry point builds it (`sagas.chaos.engine`:
a `FaultyStore` and the control file's hold); the test drives the fault through the
control file as the chaos
runner does. While the store refuses writes the engine holds what Kafka committed and
waits; afterwards every saga ended as its scripted participants decide, each command
was sent once, the store agrees with the changelog, and the engine never stopped.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from sagas.chaos.checks.timers import instance_violations
from sagas.chaos.control import ChaosControl, StoreMode, write_control
from sagas.chaos.engine import controlled
from sagas.chaos.store import FaultyStore
from sagas.machine.serialize import instance_from_dict
from sagas.runtime import topics
from sagas.runtime.engine import Engine
from sagas.runtime.transport.kafka import KafkaTransport
from services.app import app as examples
from tests.integration.engine_support import (
    Participants,
    engine_settings,
    order_placed,
    publish,
    two_step_saga,
    wait_for,
)

pytestmark = [pytest.mark.kafka, pytest.mark.chaos, pytest.mark.timeout(240)]

SUFFIXES = ("", "-nostock", "-declined")
EXPECTED = {
    "": ("COMPLETED", ["inventory.ReserveStock", "payments.AuthorizePayment"]),
    "-nostock": ("COMPENSATED", ["inventory.ReserveStock"]),
    "-declined": (
        "COMPENSATED",
        ["inventory.ReserveStock", "payments.AuthorizePayment", "inventory.ReleaseStock"],
    ),
}


def wave(name: str, n: int) -> list[str]:
    return [f"{name}{i}{SUFFIXES[i % 3]}" for i in range(n)]


async def changelog_bodies(
    bootstrap: str, topic: str, partitions: int
) -> dict[str, dict[str, Any]]:
    """The latest committed instance body of every saga id in the changelog."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, isolation_level="read_committed", enable_auto_commit=False
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        latest: dict[str, dict[str, Any]] = {}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
            assert loop.time() < deadline, "changelog not read to its end in time"
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for r in records:
                    if r.key is not None and r.value is not None and b"\x00" not in r.key:
                        latest[r.key.decode()] = json.loads(r.value)["body"]
        return latest
    finally:
        await consumer.stop()


async def test_full_then_readonly_store_loses_nothing(
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sagas.runtime.store_writer")
    prefix = f"t{uuid.uuid4().hex[:8]}."
    saga = two_step_saga("store_faults")
    control_file = tmp_path / "control" / "engine-1.json"
    settings = engine_settings(tmp_path, prefix)
    codec = examples.codec()
    participants = Participants(kafka_bootstrap, prefix, codec)
    store = await FaultyStore.open(settings.engine_db)
    clock, companions = controlled(control_file)(store)
    [control] = companions
    assert isinstance(control, ChaosControl)
    options: dict[str, Any] = {"clock": clock, "companions": companions}
    engine = Engine(
        [saga],
        settings,
        transport=KafkaTransport(kafka_bootstrap, settings.topic_prefix),
        codec=codec,
        classes=examples.classes,
        store=store,
        **options,
    )
    writer = engine.worker.writer
    orders: list[str] = []

    async def place(ids: list[str]) -> None:
        orders.extend(ids)
        await publish(
            kafka_bootstrap, f"{prefix}orders.events", codec, [order_placed(i) for i in ids]
        )

    async def ended_count() -> int:
        counts = await store.counts_by_state(saga.name)
        return counts.get("COMPLETED", 0) + counts.get("COMPENSATED", 0)

    async def set_store(mode: StoreMode) -> None:
        write_control(control_file, store=mode)

        async def applied() -> bool:
            return control.applied.store == mode

        await wait_for(applied, 5, f"the engine to apply store={mode}")

    try:
        async with asyncio.TaskGroup() as tg:
            running = tg.create_task(engine.run())
            answering = tg.create_task(participants.run())
            await place(wave("a", 12))

            async def some_ended() -> bool:
                return await ended_count() >= 3

            await wait_for(some_ended, 60, "the first sagas to end")

            for episode, mode in enumerate(("full", "readonly"), start=1):
                await set_store(mode)
                before = writer.refused
                await place(wave(f"{mode[0]}", 18))

                # Held for a while: the first refusal and five retries (about 1.5 s).
                async def refused(episode: int = episode, before: int = before) -> bool:
                    return writer.episodes == episode and writer.refused >= before + 6

                await wait_for(refused, 30, f"the {mode} store to refuse writes")
                assert writer.waiting
                assert not running.done()
                await set_store("ok")

                async def recovered() -> bool:
                    return not writer.waiting

                await wait_for(recovered, 10, "the held write to be written")

            async def all_ended() -> bool:
                return await ended_count() == len(orders)

            await wait_for(all_ended, 60, f"{len(orders)} sagas to end")
            assert not running.done(), "the engine stopped"
            answering.cancel()
            engine.shutdown()
        logged = caplog.text
        assert "database or disk is full" in logged
        assert "attempt to write a readonly database" in logged
        assert writer.episodes == 2
        assert logged.count("writable again") == 2

        states = await store.counts_by_state(saga.name)
        for order_id in orders:
            suffix = next(s for s in reversed(SUFFIXES) if order_id.endswith(s))
            state, commands = EXPECTED[suffix]
            body = await store.get(saga.name, f"order:{order_id}")
            assert body is not None, order_id
            assert body["state"] == state, order_id
            assert participants.sent(order_id) == commands, order_id
            instance = instance_from_dict(saga, body)
            assert instance_violations(instance, instance.updated) == {}
            rows = await store.history(saga.name, f"order:{order_id}")
            assert [r["seq"] for r in rows] == [e.seq for e in instance.history]
        assert sum(states.values()) == len(orders)

        logged_bodies = await changelog_bodies(
            kafka_bootstrap, prefix + topics.changelog(saga.name), settings.partitions
        )
        assert sorted(logged_bodies) == sorted(f"order:{o}" for o in orders)
        for saga_id, body in logged_bodies.items():
            assert await store.get(saga.name, saga_id) == body, saga_id
    finally:
        await store.close()
        codec.close()
