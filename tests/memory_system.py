"""An engine and scripted participants on the in-memory broker: a system without Kafka.

The engine is the real one (units, transactions, the worker, a SQLite store); only the
broker is `MemoryTransport`'s. Participants are scripted: a reply per command type,
keyed like the command and naming it in ``in_reply_to``, as the framework's do.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.definition import Saga
from sagas.runtime.engine import Engine
from sagas.runtime.store import Store
from sagas.runtime.transport.memory import MemoryBroker, MemoryTransport
from sagas.runtime.transport.records import TP, OutRecord
from sagas.settings import EngineSettings
from services.app import app as examples

Replies = Mapping[type[Record], Callable[[Any], Record]]
DEADLINE = 30.0


async def until(predicate: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Wait until ``predicate()`` holds (a condition with a deadline, never a fixed sleep)."""
    try:
        async with asyncio.timeout(deadline):
            while True:
                if predicate():
                    return
                await asyncio.sleep(0.01)  # polling interval of the condition
    except TimeoutError:
        raise AssertionError(f"timed out after {deadline}s waiting for {what}") from None


async def eventually(
    check: Callable[[], Awaitable[bool]], what: str, deadline: float = DEADLINE
) -> None:
    """Wait until the coroutine ``check()`` says True (polled, with a deadline)."""
    try:
        async with asyncio.timeout(deadline):
            while True:
                if await check():
                    return
                await asyncio.sleep(0.02)  # polling interval of the condition
    except TimeoutError:
        raise AssertionError(f"timed out after {deadline}s waiting for {what}") from None


def settings(tmp: Path, name: str = "engine", partitions: int = 3) -> EngineSettings:
    return EngineSettings(
        partitions=partitions,
        engine_db=tmp / f"{name}.db",
        session_timeout=timedelta(seconds=2),
    )


@asynccontextmanager
async def engine(
    broker: MemoryBroker,
    definitions: Sequence[Saga[Any]],
    config: EngineSettings,
    codec: Codec | None = None,
) -> AsyncIterator[Engine]:
    """An engine on ``broker``, running and owning its units, until the block ends."""
    own = codec is None
    codec = codec or examples.codec()
    store = await Store.open(config.engine_db)
    try:
        async with Engine(
            definitions,
            config,
            transport=MemoryTransport(broker),
            codec=codec,
            classes=examples.classes,
            store=store,
        ) as running:
            await running.wait_ready(timedelta(seconds=DEADLINE))
            yield running
    finally:
        await store.close()
        if own:
            codec.close()


class Participants:
    """Answers every command of ``topics`` with ``replies[type](command)``."""

    def __init__(self, broker: MemoryBroker, codec: Codec, topics: Sequence[str], replies: Replies):
        self._broker = broker
        self._codec = codec
        self._topics = list(topics)
        self._replies = replies
        self.commands: list[Envelope] = []

    async def _serve(self, stop: asyncio.Event) -> None:
        consumer = MemoryTransport(self._broker).group_consumer(
            "participants",
            self._topics,
            _Quiet(),
            session_timeout=timedelta(seconds=30),
            fetch_wait=timedelta(milliseconds=50),
        )
        await consumer.start()
        try:
            while not stop.is_set():
                for records in (await consumer.poll(timedelta(milliseconds=50), 100)).values():
                    for record in records:
                        self._answer(record.key, self._codec.decode(record.headers, record.value))
        finally:
            await consumer.stop()

    def _answer(self, key: bytes | None, command: Envelope) -> None:
        self.commands.append(command)
        payload = self._replies[type(command.payload)](command.payload)
        reply = Envelope(
            id=f"{command.id}:reply",
            type=payload.SCHEMA,
            source="/tests/participants",
            time=datetime.now(UTC),
            payload=payload,
            saga_id=command.saga_id,
            in_reply_to=command.id,
        )
        headers, value = self._codec.encode(reply)
        assert command.reply_to is not None
        self._broker.publish(OutRecord(command.reply_to, value, key=key, headers=tuple(headers)))

    @asynccontextmanager
    async def running(self) -> AsyncIterator[Participants]:
        stop = asyncio.Event()
        task = asyncio.create_task(self._serve(stop))
        try:
            yield self
        finally:
            stop.set()
            await asyncio.wait_for(task, DEADLINE)


class _Quiet:
    async def revoked(self, tps: Sequence[TP]) -> None:
        return None

    async def assigned(self, tps: Sequence[TP]) -> None:
        return None


def publish(broker: MemoryBroker, codec: Codec, topic: str, key: str, event: Record) -> None:
    """A domain event, as a service publishes it (keyed by its aggregate id)."""
    envelope = Envelope(
        id=f"{event.SCHEMA}:{key}", type=event.SCHEMA, source="/tests", time=datetime.now(UTC),
        payload=event,
    )  # fmt: skip
    headers, value = codec.encode(envelope)
    broker.publish(OutRecord(topic, value, key=key.encode(), headers=tuple(headers)))


def read(broker: MemoryBroker, topic: str, partitions: int) -> list[Envelope]:
    """Every committed record of ``topic``, decoded."""
    codec = examples.codec()
    try:
        return [
            codec.decode(r.headers, r.value)
            for p in range(partitions)
            for r in broker.records(TP(topic, p))
        ]
    finally:
        codec.close()
