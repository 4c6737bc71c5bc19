"""Test helpers for participants: drive a `Processor` without a broker, or run a
service in-process against a real one and talk to it like the engine.

Without a broker::

record = command_record(codec, ReserveStock(...), command_id="order:o-1:reserve_stock:1")
[out] = await processor.command(record)
reply = decode(codec, out).payload
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.participant.definition import Participant
from sagas.participant.processor import Incoming, Processor
from sagas.participant.service import ParticipantService, prepare_store
from sagas.participant.settings import ServiceSettings
from sagas.participant.store import Outbound, Store

REPLY_TO = "sagas.test.inbox"


def command_envelope(
    command: Record,
    *,
    command_id: str,
    saga_id: str | None = "saga:1",
    reply_to: str | None = REPLY_TO,
    traceparent: str | None = None,
    compensates: tuple[str, ...] = (),
) -> Envelope:
    """The envelope the engine would send ``command`` in (a compensation names the
    commands it undoes in ``compensates``)."""
    return Envelope(
        id=command_id,
        type=command.SCHEMA,
        source="/sagas/test",
        time=datetime.now(UTC),
        payload=command,
        saga_id=saga_id,
        reply_to=reply_to,
        traceparent=traceparent,
        compensates=compensates,
    )


def incoming(
    codec: Codec, envelope: Envelope, *, topic: str = "t.commands", offset: int = 0
) -> Incoming:
    """``envelope`` encoded as a consumed record."""
    headers, value = codec.encode(envelope)
    key = envelope.saga_id.encode() if envelope.saga_id else None
    return Incoming(topic=topic, partition=0, offset=offset, key=key, value=value, headers=headers)


def command_record(codec: Codec, command: Record, *, command_id: str, **kw: Any) -> Incoming:
    """A consumed record carrying ``command`` (see `command_envelope`)."""
    return incoming(codec, command_envelope(command, command_id=command_id, **kw))


def decode(codec: Codec, out: Outbound) -> Envelope:
    """Decode a produced record."""
    return codec.decode(out.headers, out.value, topic=out.topic)


async def open_processor(
    participant: Participant, path: Path, codec: Codec, **kwargs: Any
) -> Processor:
    """A processor over a new, seeded store at ``path`` (close it with ``.store.close()``)."""
    store = await prepare_store(Store(path), participant, None)
    return Processor(participant, store, codec, **kwargs)


DEADLINE = 60.0


@asynccontextmanager
async def running(
    participant: Participant,
    bootstrap: str,
    data_dir: Path,
    codec: Codec,
    prefix: str,
    **settings: Any,
) -> AsyncIterator[ParticipantService]:
    """A started service; stopped (and its store closed) on exit."""
    values: dict[str, Any] = {"web_port": 0, **settings}
    config = ServiceSettings(data_dir=data_dir, topic_prefix=prefix, **values)
    service = ParticipantService(participant, config, bootstrap=bootstrap, codec=codec)
    try:
        async with asyncio.timeout(DEADLINE):
            await service.start()
        yield service
    finally:
        await service.stop()


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:8]}."


class Wire:
    """Sends commands as the engine would and reads the replies (read_committed)."""

    def __init__(self, bootstrap: str, codec: Codec, replies: str) -> None:
        self.bootstrap, self.codec, self.replies = bootstrap, codec, replies
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
        self.consumer = AIOKafkaConsumer(
            replies,
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        self.received: list[Any] = []

    async def __aenter__(self) -> Wire:
        await self.producer.start()
        await self.consumer.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    def encode(self, command: Record, command_id: str, saga_id: str) -> tuple[Any, bytes]:
        envelope = command_envelope(
            command, command_id=command_id, saga_id=saga_id, reply_to=self.replies
        )
        return self.codec.encode(envelope)

    async def send(self, topic: str, command: Record, command_id: str, saga_id: str) -> None:
        headers, value = self.encode(command, command_id, saga_id)
        await self.producer.send_and_wait(topic, value, key=saga_id.encode(), headers=headers)

    async def replies_until(
        self, done: Callable[[list[Envelope]], bool], within: float = DEADLINE
    ) -> list[Envelope]:
        """Read replies until ``done(all replies so far)``; fails after ``within`` seconds."""
        async with asyncio.timeout(within):
            while not done(self.decoded()):
                batch = await self.consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    self.received.extend(records)
        return self.decoded()

    def decoded(self) -> list[Envelope]:
        return [
            self.codec.decode(list(r.headers), r.value, topic=r.topic, offset=r.offset)
            for r in self.received
        ]


async def until(check: Callable[[], Awaitable[bool]], within: float = DEADLINE) -> None:
    """Wait until ``check()`` holds, polling; fails after ``within`` seconds."""
    async with asyncio.timeout(within):
        # polls state owned by another component (its store): there is no event to await
        while not await check():  # noqa: ASYNC110
            await asyncio.sleep(0.1)


async def read_all(bootstrap: str, topic: str, count: int, within: float = DEADLINE) -> list[Any]:
    """The first ``count`` committed records of ``topic``."""
    found: list[Any] = []
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(within):
            while len(found) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    found.extend(records)
    finally:
        await consumer.stop()
    return found
