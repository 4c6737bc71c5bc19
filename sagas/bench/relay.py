"""The raw relay: the engine's message path without saga logic, the limit to compare with.

A consume -> produce loop on plain aiokafka with the engine's settings: one consumer
in a group, ``read_committed``, no auto commit, batches of at most ``SAGAS_MAX_BATCH``
records per poll; per partition a transactional producer (linger and retry backoff as
the engine's) that sends the batch's records, untouched, to the output topic together
with the consumed offsets in one transaction; the partitions' transactions of one poll
run concurrently, as the engine's do. Run as ``python -m sagas.bench.relay IN OUT``
with ``KAFKA_BOOTSTRAP_SERVERS`` set.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from sagas.bench.harness import BenchError, Phase
from sagas.bench.load import Generator, Observer
from sagas.runtime.loop import DEFAULT_IDLE_TICK
from sagas.runtime.topics import TopicSpec, ensure_topics
from sagas.runtime.transport.kafka import TXN_RETRY_BACKOFF_MS
from sagas.settings import EngineSettings
from services.app import app as examples

LINGER_MS = 0  # as the engine's transactional producers

IDLE_MS = int(DEFAULT_IDLE_TICK.total_seconds() * 1000)  # the engine's poll timeout


async def relay(bootstrap: str, source: str, target: str, stop: asyncio.Event) -> None:
    """Relay ``source`` to ``target`` until ``stop`` is set."""
    settings = EngineSettings()
    group = f"{source}.relay"
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=group,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=IDLE_MS,
    )
    producers: dict[TopicPartition, AIOKafkaProducer] = {}

    async def transaction(tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        producer = producers.get(tp)
        if producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=bootstrap,
                transactional_id=f"{group}.{tp.partition}",
                linger_ms=LINGER_MS,
                retry_backoff_ms=TXN_RETRY_BACKOFF_MS,
            )
            await producer.start()
            producers[tp] = producer
        await producer.begin_transaction()
        futures = [
            await producer.send(
                target, r.value, key=r.key, headers=list(r.headers or ()), partition=None
            )
            for r in records
        ]
        await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)
        await producer.commit_transaction()
        for f in futures:
            await f

    await consumer.start()
    try:
        while not stop.is_set():
            data = await consumer.getmany(timeout_ms=IDLE_MS, max_records=settings.max_batch)
            # The partitions' transactions overlap, as the engine's do.
            await asyncio.gather(*(transaction(tp, rs) for tp, rs in data.items() if rs))
    finally:
        for producer in producers.values():
            await producer.stop()
        await consumer.stop()


def main() -> None:
    source, target = sys.argv[1], sys.argv[2]
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await relay(bootstrap, source, target, stop)

    asyncio.run(run())


if __name__ == "__main__":
    main()


async def run_relay(
    bootstrap: str,
    workdir: Path,
    *,
    partitions: int = 6,
    duration_s: float = 15.0,
    ramp_s: float = 3.0,
    progress: Callable[[str], None] = print,
) -> float:
    """Relayed records per second at saturation, fed by the bench's load generator."""
    codec = examples.codec()
    with Phase(bootstrap, workdir, "relay", partitions) as phase:
        source, target = phase.topic("relay.in"), phase.topic("relay.out")
        specs = [TopicSpec(source, partitions), TopicSpec(target, partitions)]
        await ensure_topics(bootstrap, specs, 1)
        phase.start_process("relay", ("python", "-m", "sagas.bench.relay", source, target), {})
        observer = Observer(bootstrap, target, wanted=None, keep_keys=False)
        stop = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            watch = tg.create_task(observer.run())
            try:
                async with Generator(bootstrap, source, codec, "relay") as gen:
                    await gen.send(100)
                    await gen.flush()
                    if not await observer.wait_count(100, 180):
                        phase.check_alive()
                        raise BenchError("relay: warm-up did not complete")

                    def backlog() -> int:
                        now = time.monotonic()
                        return max(2000, int(observer.rate(now - 2, now)))

                    filler = tg.create_task(gen.keep_backlog(lambda: observer.count, backlog, stop))
                    await asyncio.sleep(ramp_s)  # ramp: the backlog reaches the relay
                    t0 = time.monotonic()
                    await asyncio.sleep(duration_s)  # the measurement window
                    t1 = time.monotonic()
                    phase.check_alive()
                    stop.set()
                    await filler
            finally:
                stop.set()
                watch.cancel()
    codec.close()
    rate = observer.rate(t0, t1)
    progress(f"    {rate:8.1f} records/s relayed over {t1 - t0:.0f}s")
    return rate
