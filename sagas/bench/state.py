"""Bench figures of the engine's state: takeover (restore) time and memory per stored saga.

`restore_s`: how long an engine process takes, from its start, to own a changelog
partition holding ``n`` order sagas: the changelog is filled first (not timed), then
``sagas run order_fulfilment`` starts with an empty SQLite file and the clock runs until
the store records the changelog's end offset as applied (the last write of catch-up).

`rss_mb`: the resident memory of an engine process whose store holds ``n`` order sagas,
after a fixed amount of work (replies to stored sagas, which forces loads across the
whole id space, and new orders through the router).

Both use copies of real order sagas, encoded as the engine writes them
(`sagas.bench.stored_sagas`).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import sqlite3
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from sagas.bench.readiness import NotReadyError, Wanted, wait_ready
from sagas.bench.stored_sagas import (
    PARTITION,
    SAGA,
    Templates,
    fill_changelog,
    fill_store,
    order,
)
from sagas.contracts import topics
from sagas.contracts.record import Envelope, Record
from sagas.dev.processes import ManagedProcess, Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.errors import SagasError
from sagas.runtime.topics import ensure_topics, saga_topics
from services.app import app as examples
from services.messages.inventory import StockReserved

__all__ = [
    "BenchError",
    "Restore",
    "applied_offset",
    "measure_restore",
    "restore_s",
    "rss_mb",
    "vm_rss_mb",
]


class BenchError(SagasError):
    """A bench run did not reach its end (engine died, deadline passed)."""


# -- Kafka and the engine process --------------------------------------------------------


def _prefix(kind: str) -> str:
    return f"bench-{kind}-{uuid.uuid4().hex[:8]}."


async def _saga_topics(bootstrap: str, prefix: str) -> None:
    specs = [replace(s, name=topics.physical(prefix, s.name)) for s in saga_topics(SAGA, 1)]
    await ensure_topics(bootstrap, specs, 1)


def applied_offset(db: Path) -> int | None:
    """The changelog offset the store at ``db`` has applied (None: not there yet)."""
    if not db.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as c:
            row = c.execute(
                "SELECT next_offset FROM changelog_offsets WHERE saga_name = ? AND partition = ?",
                (SAGA, PARTITION),
            ).fetchone()
    except sqlite3.Error:
        return None  # the engine is still creating the file
    return int(row[0]) if row else None


_CAUGHT_UP = re.compile(r"caught up \S+: (\d+) records from offset \d+ in ([0-9.]+)s")


@dataclass(frozen=True)
class Restore:
    """One takeover: the end-to-end time and what the engine itself logged."""

    records: int
    total_s: float
    """Engine process start -> the store has applied the changelog's end offset."""
    catch_up_s: float | None
    """The engine's own timing of `catch_up` (partition assigned -> end applied)."""


async def measure_restore(
    n: int, bootstrap: str, workdir: Path, *, deadline_s: float = 600
) -> Restore:
    """Fill a fresh changelog with ``n`` order sagas and time an engine's takeover."""
    prefix = _prefix("restore")
    await _saga_topics(bootstrap, prefix)
    log_topic = topics.physical(prefix, topics.changelog(SAGA))
    end = await fill_changelog(bootstrap, log_topic, n, Templates.build())
    layout = SystemLayout(
        bootstrap, workdir, prefix, partitions=1, extra_env={"SAGAS_TELEMETRY": "off"}
    )
    db = layout.engine_db(0)
    await asyncio.to_thread(_remove_db, db)
    with Supervisor(workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        began = time.monotonic()
        engine = system.start(system.engine_spec(0, (SAGA,)))
        while (applied_offset(db) or 0) < end:
            if not engine.alive() or time.monotonic() - began > deadline_s:
                raise BenchError(f"engine did not catch up {n} records:\n" + _tail(supervisor))
            await asyncio.sleep(0.05)  # polling interval of the deadline loop above
        total = time.monotonic() - began
        caught = await _logged_catch_up(engine.log)
        supervisor.stop_all()
    return Restore(n, total, caught)


async def _logged_catch_up(log: Path) -> float | None:
    # The log line follows the last store write by microseconds; give it a second.
    deadline = time.monotonic() + 1.0
    while True:
        text = await asyncio.to_thread(log.read_text, errors="replace")
        for match in _CAUGHT_UP.finditer(text):
            if int(match.group(1)) > 0:
                return float(match.group(2))
        if time.monotonic() > deadline:
            return None
        await asyncio.sleep(0.05)  # polling interval of the deadline loop above


def _tail(supervisor: Supervisor) -> str:
    return "\n".join(supervisor.log_tail(p.spec.name) for p in supervisor)


async def restore_s(n: int, bootstrap: str, workdir: Path, *, deadline_s: float = 600) -> float:
    """Seconds from an engine process's start until it has caught up ``n`` stored sagas.

    The changelog partition (of a fresh topic prefix) is filled first, untimed; the
    engine starts with an empty SQLite file; the time ends when its store has applied
    the changelog's end offset (polled read-only).
    """
    return (await measure_restore(n, bootstrap, workdir, deadline_s=deadline_s)).total_s


# -- memory -------------------------------------------------------------------------------


def _remove_db(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def vm_rss_mb(pid: int) -> float:
    """VmRSS of ``pid`` from /proc, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmRSS for pid {pid}")


def _envelope(payload: Record, saga_id: str | None, now: datetime) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=payload.SCHEMA,
        source="/bench",
        time=now,
        payload=payload,
        saga_id=saga_id,
    )


async def _send_work(bootstrap: str, prefix: str, n: int, work: int) -> tuple[int, int]:
    """``work`` inputs: replies to stored sagas picked at random, then new orders.

    Returns the inbox offset of the last reply and the number of new orders.
    """
    codec = examples.codec()
    rng = random.Random(n)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        now = datetime.now(UTC)
        replies = []
        for k in range(work // 2):
            order_id = Templates.order_id(rng.randrange(n))
            reply = StockReserved(order_id=order_id, reservation_id=f"r-{k}")
            headers, value = codec.encode(_envelope(reply, f"order:{order_id}", now))
            replies.append(
                await producer.send(
                    topics.physical(prefix, topics.inbox(SAGA)),
                    value,
                    key=f"order:{order_id}".encode(),
                    headers=headers,
                    partition=PARTITION,
                )
            )
        last_reply = max([(await r).offset for r in replies], default=-1)
        orders = work - work // 2
        for k in range(orders):
            placed = replace(order(), order_id=f"new-{k:09d}", placed_at=now)
            headers, value = codec.encode(_envelope(placed, None, now))
            await producer.send(
                topics.physical(prefix, topics.events("orders")),
                value,
                key=placed.order_id.encode(),
                headers=headers,
            )
        await producer.flush()
    finally:
        await producer.stop()
        codec.close()
    return last_reply, orders


async def _committed(bootstrap: str, group: str, topic: str) -> int:
    """The offset ``group`` committed on partition 0 of ``topic`` (-1: none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group)
    await consumer.start()
    try:
        return int(await consumer.committed(TopicPartition(topic, PARTITION)) or -1)
    finally:
        await consumer.stop()


def _new_orders(db: Path) -> int:
    """How many sagas started by the bench's new orders the store at ``db`` holds."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as c:
        (count,) = c.execute(
            "SELECT COUNT(*) FROM instances WHERE saga_name = ? AND saga_id LIKE 'order:new-%'",
            (SAGA,),
        ).fetchone()
    return int(count)


async def _wait_owned(
    bootstrap: str, prefix: str, engine: ManagedProcess, supervisor: Supervisor, deadline_s: float
) -> None:
    """Wait until the engine owns the inbox's one partition (`sagas.bench.readiness`)."""

    def check_alive() -> None:
        if not engine.alive():
            raise BenchError("engine exited:\n" + _tail(supervisor))

    inbox = topics.physical(prefix, topics.inbox(SAGA))
    wanted = Wanted(f"{prefix}sagas-engine", {inbox: 1}, 1, (engine.log,))
    try:
        await wait_ready(bootstrap, [wanted], deadline_s, check_alive)
    except NotReadyError as exc:
        raise BenchError(f"{exc}:\n" + _tail(supervisor)) from exc


async def rss_mb(
    n: int, bootstrap: str, workdir: Path, *, work: int = 2000, deadline_s: float = 900
) -> float:
    """Resident memory (MiB) of an engine whose store holds ``n`` sagas, after ``work`` inputs.

    The store is written directly (`fill_store`: the rows catch-up writes, through the
    store's own `Store.apply`). The engine then processes ``work`` inputs: half of them
    replies to stored sagas picked at random (each one a load from SQLite), half new
    orders through the router (each a new saga). VmRSS is read once all are processed.
    """
    prefix = _prefix("rss")
    await _saga_topics(bootstrap, prefix)
    layout = SystemLayout(
        bootstrap, workdir, prefix, partitions=1, extra_env={"SAGAS_TELEMETRY": "off"}
    )
    db = layout.engine_db(0)
    await asyncio.to_thread(_remove_db, db)
    await fill_store(db, n, Templates.build())
    with Supervisor(workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        engine = system.start(system.engine_spec(0, (SAGA,)))
        inbox = topics.physical(prefix, topics.inbox(SAGA))
        await _wait_owned(bootstrap, prefix, engine, supervisor, deadline_s)
        last_reply, orders = await _send_work(bootstrap, prefix, n, work)
        began = time.monotonic()
        group = f"{prefix}sagas-engine"
        while (
            await _committed(bootstrap, group, inbox) <= last_reply
            or await asyncio.to_thread(_new_orders, db) < orders
        ):
            if not engine.alive() or time.monotonic() - began > deadline_s:
                raise BenchError("engine did not process the work:\n" + _tail(supervisor))
            await asyncio.sleep(0.2)  # polling interval of the deadline loop above
        rss = vm_rss_mb(engine.pid)
        supervisor.stop_all()
    await asyncio.to_thread(_remove_db, db)  # a million sagas take 6 GB
    return rss
