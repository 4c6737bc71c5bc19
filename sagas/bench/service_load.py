"""One participant service under load: what a command costs it, and how long it takes.

``python -m sagas.bench.service_load [--mode closed|rate|burst] ...`` starts one
``sagas serve inventory`` process (the runner of ``--runner``, a store seeded so that
no order runs short) on the configured broker or a dev broker of its own, and sends it
``ReserveStock`` commands of the bench order's two lines, each keyed by its own saga, as
the engine would; it reads the replies from a topic of its own. After a warm-up of 200
commands, one measurement:

- ``closed``: ``--inflight`` commands outstanding for ``--seconds``, each reply read
  sends the next one (like sagas waiting for their step: the service sees a stream);
- ``rate``: ``--rate`` commands a second, open loop, for ``--seconds``; the latency
  is per command, from just before its send to the moment its reply is read;
- ``burst``: ``--count`` commands sent at once (the service drains a backlog).

It prints commands/s, the CPU time of the service process per command
(``/proc/<pid>/stat``, every thread; of the broker too when it runs here), the latency
(p50, p99) and how the service stopped on SIGTERM. The machine's other load shows in
every figure: compare two versions in the same session, interleaved, several times.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sagas.bench.cpu import cpu_seconds
from sagas.bench.harness import bench_broker
from sagas.bench.latency import quantile
from sagas.bench.load import order_placed
from sagas.bench.readiness import Wanted, wait_ready
from sagas.bench.topics import create_topics
from sagas.contracts import topics
from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from services.app import app as examples
from services.messages.inventory import ReserveStock, StockItem

PARTITIONS = 6
WARMUP = 200
SERVICE = "inventory"

Message = tuple[str, bytes, list[tuple[str, bytes]], bytes]
"""A command ready to send: its id, key, headers and value."""


def command(codec: Codec, replies: str, index: int) -> Message:
    """``ReserveStock`` of the bench order's lines for saga ``order:b<index>``."""
    order = order_placed(f"b{index}")
    saga = f"order:{order.order_id}"
    items = tuple(StockItem(sku=line.sku, quantity=line.quantity) for line in order.items)
    envelope = Envelope(
        id=f"{saga}:reserve_stock:1",
        type=ReserveStock.SCHEMA,
        source="/bench/service_load",
        time=datetime.now(UTC),
        payload=ReserveStock(order_id=order.order_id, items=items),
        saga_id=saga,
        reply_to=replies,
    )
    headers, value = codec.encode(envelope)
    return envelope.id, saga.encode(), headers, value


class Driver:
    """Sends commands to the service and stamps each reply as it is read."""

    def __init__(self, bootstrap: str, codec: Codec, commands: str, replies: str) -> None:
        self.codec, self.commands, self.replies = codec, commands, replies
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        self.sent: dict[str, float] = {}
        self.answered: dict[str, float] = {}
        self.on_reply: Callable[[], Awaitable[None]] | None = None

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self.consumer.assign([TopicPartition(self.replies, p) for p in range(PARTITIONS)])

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def send(self, message: Message) -> None:
        command_id, key, headers, value = message
        self.sent[command_id] = time.monotonic()
        await self.producer.send(self.commands, value, key, headers=headers)

    async def read_until(self, count: int) -> None:
        """Read replies until ``count`` commands are answered."""
        while len(self.answered) < count:
            batch = await self.consumer.getmany(timeout_ms=200)
            now = time.monotonic()
            for records in batch.values():
                for record in records:
                    command_id = dict(record.headers)["in_reply_to"].decode()
                    self.answered[command_id] = now
                    if self.on_reply is not None:
                        await self.on_reply()

    def latencies(self, ids: list[str]) -> list[float]:
        return [(self.answered[i] - self.sent[i]) * 1000 for i in ids]


async def measure(
    bootstrap: str, workdir: Path, args: argparse.Namespace, broker_pid: int | None
) -> dict[str, Any]:
    """Start the service, warm it up, run one measurement, stop it; the figures."""
    prefix = f"load{uuid.uuid4().hex[:6]}."
    commands = topics.physical(prefix, topics.commands(SERVICE))
    replies = topics.physical(prefix, "service-load.replies")
    await create_topics(bootstrap, {commands: PARTITIONS, replies: PARTITIONS})
    env = {
        "SERVICE_RUNNER": args.runner,
        "SAGAS_TELEMETRY": "off",
        "SAGAS_TELEMETRY_LOG_FORMAT": "text",
    }
    layout = SystemLayout(bootstrap, workdir, prefix, PARTITIONS, extra_env=env)
    seed = {"stock": {"SKU-1": 10**12, "SKU-2": 10**12}}
    with examples.codec() as codec, Supervisor(workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        service = system.start(system.service_spec(SERVICE, seed))
        group = Wanted(f"{prefix}{SERVICE}-service", {commands: PARTITIONS}, 1)
        await wait_ready(bootstrap, [group], 90, lambda: None)
        driver = Driver(bootstrap, codec, commands, replies)
        await driver.start()
        try:
            for i in range(WARMUP):
                await driver.send(command(codec, replies, -1 - i))
            await asyncio.wait_for(driver.read_until(WARMUP), 120)
            pids = [p for p in (service.pid, broker_pid) if p is not None]
            cpu0, t0 = [cpu_seconds(p) for p in pids], time.monotonic()
            ids = await RUNS[args.mode](driver, args)
            t1, cpu1 = time.monotonic(), [cpu_seconds(p) for p in pids]
        finally:
            await driver.stop()
        began = time.monotonic()
        supervisor.stop(SERVICE)
        stopped_s = time.monotonic() - began
    latencies = driver.latencies(ids)
    per_command = [(b - a) * 1000 / len(ids) for a, b in zip(cpu0, cpu1, strict=True)]
    return {
        "mode": args.mode,
        "runner": args.runner,
        "commands": len(ids),
        "commands_per_s": round(len(ids) / (t1 - t0), 1),
        "service_cpu_ms_per_command": round(per_command[0], 3),
        "broker_cpu_ms_per_command": round(per_command[1], 3) if broker_pid else None,
        "latency_ms": {
            "p50": round(quantile(latencies, 0.5), 2),
            "p99": round(quantile(latencies, 0.99), 2),
        },
        "sigterm": {
            "exit": service.exit_code(),
            "seconds": round(stopped_s, 2),
            "killed_after_term": service.killed_after_term,
        },
    }


async def _closed(driver: Driver, args: argparse.Namespace) -> list[str]:
    first = WARMUP
    counter = iter(range(10**9))
    end = time.monotonic() + args.seconds

    async def next_one() -> None:
        if time.monotonic() < end:
            await driver.send(command(driver.codec, driver.replies, next(counter)))

    for _ in range(args.inflight):
        await next_one()
    driver.on_reply = next_one
    while time.monotonic() < end:
        await driver.read_until(len(driver.answered) + 1)
    driver.on_reply = None
    await driver.read_until(len(driver.sent))  # the last ones in flight
    return [i for i in list(driver.sent)[first:] if i in driver.answered]


async def _rate(driver: Driver, args: argparse.Namespace) -> list[str]:
    count = int(args.rate * args.seconds)
    reading = asyncio.create_task(driver.read_until(WARMUP + count))
    began = time.monotonic()
    for i in range(count):
        delay = began + i / args.rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)  # the open loop's schedule
        await driver.send(command(driver.codec, driver.replies, i))
    await asyncio.wait_for(reading, 120)
    return list(driver.sent)[WARMUP:]


async def _burst(driver: Driver, args: argparse.Namespace) -> list[str]:
    messages = [command(driver.codec, driver.replies, i) for i in range(args.count)]
    reading = asyncio.create_task(driver.read_until(WARMUP + args.count))
    for message in messages:
        await driver.send(message)
    await asyncio.wait_for(reading, 600)
    return list(driver.sent)[WARMUP:]


RUNS: dict[str, Callable[[Driver, argparse.Namespace], Awaitable[list[str]]]] = {
    "closed": _closed,
    "rate": _rate,
    "burst": _burst,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m sagas.bench.service_load", description=__doc__)
    p.add_argument("--mode", choices=sorted(RUNS), default="closed")
    p.add_argument("--runner", choices=("aiokafka", "faust"), default="aiokafka")
    p.add_argument("--inflight", type=int, default=20, help="closed: commands outstanding")
    p.add_argument("--rate", type=float, default=20.0, help="rate: commands a second")
    p.add_argument("--seconds", type=float, default=10.0, help="closed, rate: how long")
    p.add_argument("--count", type=int, default=3000, help="burst: commands")
    return p


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory(prefix="service-load-") as tmp,
        bench_broker(Path(tmp)) as broker,
    ):
        return await measure(broker.bootstrap, Path(tmp), args, broker.pid)


if __name__ == "__main__":
    print(json.dumps(asyncio.run(_main(parser().parse_args())), indent=2))
