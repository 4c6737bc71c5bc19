"""`sagas demo`: the main job.

Until the saga engine lands, the demo proves the plumbing: it uses the configured
cluster or starts the dev broker, sends messages round trip through a fresh topic with
an idempotent producer and a read_committed consumer, and reports what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from rich.console import Console
from rich.progress import Progress

from sagas.dev.cluster import dev_broker, external_bootstrap
from sagas.settings import DevKafkaSettings


async def round_trip(bootstrap: str, count: int, console: Console) -> list[float]:
    """Produce ``count`` messages and consume them back; return each one's latency (ms)."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic = f"sagas.demo.roundtrip.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await consumer.start()
    sent: dict[bytes, float] = {}
    latencies: list[float] = []
    try:
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(f"round trip through {topic}", total=count)
            for i in range(count):
                key = f"m{i}".encode()
                sent[key] = time.perf_counter()
                await producer.send_and_wait(topic, b"hello saga", key=key)
            async for record in consumer:
                assert record.key is not None
                latencies.append((time.perf_counter() - sent[record.key]) * 1000)
                progress.advance(task)
                if len(latencies) == count:
                    break
    finally:
        await consumer.stop()
        await producer.stop()
    return latencies


def run(args: argparse.Namespace) -> int:
    console = Console()
    bootstrap = external_bootstrap()
    broker = None
    if bootstrap is None:
        settings = DevKafkaSettings()
        broker = dev_broker(settings)
        with console.status("starting the dev Kafka broker..."):
            started = broker.start(timeout=settings.start_timeout)
        console.print(broker.status().describe())
        bootstrap = broker.bootstrap_servers
        if not started:
            broker = None  # not ours to stop
    try:
        latencies = asyncio.run(round_trip(bootstrap, args.messages, console))
    finally:
        if broker is not None:
            broker.stop()
            console.print(f"stopped the dev broker; its log stays at {broker.log_file}")
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    console.print(
        f"[green]{len(latencies)} messages went round trip through Kafka[/green] "
        f"(p50 {p50:.1f} ms, max {latencies[-1]:.1f} ms)"
    )
    return 0
