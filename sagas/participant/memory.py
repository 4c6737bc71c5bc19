"""A participant on the in-memory broker: the aiokafka runner's loop on `MemoryTransport`.

`MemoryService` runs a `Participant`'s real `Processor` (its handlers, its SQLite store,
deduplication and tombstones) on a `sagas.runtime.transport.memory.MemoryBroker`, the
way `sagas.participant.runner.KafkaRunner` runs it on Kafka. Per poll of the service's
group (``read_committed``: an aborted engine transaction's commands are never seen):

1. the records are applied in one SQLite transaction, or a few (`Processor.batches`);
2. what each transaction yields (replies, dead letters) is written once it is committed;
3. then the poll's offsets are committed, then ``after_command`` runs.

So, as on Kafka, a command's processed row is on disk before its reply is written, and
its reply is in the log before its offset is committed.

It offers the surface a participant's hooks and routes use on a `ParticipantService`
(``store``, ``codec``, ``processor``, ``topic``, ``send``, ``publish``), so an outbox
flushed by ``on_start`` or ``after_command``, or a route such as ``POST /orders``, works
unchanged. Topic names are logical (no prefix). An ``intercept`` may answer some
commands itself (a scripted stand-in, `sagas.testing_memory`); the processor gets the
others. `sagas.testing_memory.MemorySystem` runs one per service of an app.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sagas.contracts import topics
from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.participant.definition import JSONObject, Participant
from sagas.participant.processor import Incoming, Processor
from sagas.participant.service import prepare_store
from sagas.participant.store import Outbound, Store
from sagas.participant.timers import run_timers
from sagas.runtime.errors import NotAssigned
from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.memory import MemoryBroker, MemoryTransport
from sagas.runtime.transport.records import TP, Consumed, OutRecord

log = logging.getLogger(__name__)

Intercept = Callable[[Incoming], list[Outbound] | None]
"""Answers one command record itself (what to produce), or returns None: the processor
applies it."""

POLL = timedelta(milliseconds=50)
"""How long one poll waits for records (and how soon `MemoryService.stop` is seen)."""

MAX_BATCH = 500
"""Most records one poll hands over, as the aiokafka runner."""

SESSION_TIMEOUT = timedelta(seconds=30)
"""The group session: a service busy in a handler for longer leaves its group."""

REQUEST_TIMEOUT = timedelta(seconds=5)


class _NoListener:
    async def revoked(self, tps: Sequence[TP]) -> None:
        return None

    async def assigned(self, tps: Sequence[TP]) -> None:
        return None


class MemoryService:
    """One participant service on a `MemoryBroker`, until `stop`.

    Args:
        name: the service; it reads ``<name>.commands``.
        broker: the broker shared with the engine.
        codec: the message codec (the caller closes it).
        participant: the service definition whose `Processor` applies the commands
            and events, over a new store at ``database``; None for a service that only
            ``intercept`` answers (commands it leaves are never answered).
        database: the SQLite file of the participant's store.
        partitions: of the topics it creates when missing.
        intercept: answers the commands it chooses before the processor sees them.
        clock: the time handlers see.
    """

    def __init__(
        self,
        name: str,
        broker: MemoryBroker,
        codec: Codec,
        *,
        participant: Participant | None = None,
        database: Path | None = None,
        partitions: int = 1,
        intercept: Intercept | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if participant is not None and database is None:
            raise ValueError(f"{name}: a participant needs a database path")
        self.name = name
        self.broker = broker
        self.codec = codec
        self.participant = participant
        self.partitions = partitions
        self.store = Store(database or Path(f"{name}.db"))
        self.processor = (
            None if participant is None else Processor(participant, self.store, codec, clock=clock)
        )
        self._intercept = intercept
        self._transport = MemoryTransport(broker)
        self._producer = self._transport.idempotent_producer(
            f"{name}-service", request_timeout=REQUEST_TIMEOUT
        )
        self._stopping = asyncio.Event()
        self._clock = clock
        self.ready = asyncio.Event()
        """Set once the group gave the service its partitions."""

    # -- what hooks and routes use (as on `ParticipantService`) ------------------------

    def topic(self, name: str) -> str:
        """A topic name: logical, as it is in memory."""
        return name

    @property
    def commands_topic(self) -> str:
        return topics.commands(self.name)

    async def send(self, records: Sequence[Outbound]) -> None:
        """Produce ``records`` one by one, each acknowledged before the next."""
        for r in records:
            out = OutRecord(r.topic, r.value, key=r.key, headers=tuple(r.headers))
            await (await self._producer.send(out))

    async def publish(self, event: Record, *, domain: str, key: str, event_id: str) -> None:
        """Publish a domain event to ``<domain>.events`` with CloudEvents headers."""
        envelope = Envelope(
            id=event_id,
            type=event.SCHEMA,
            source=f"/services/{self.name}",
            time=self._clock(),
            payload=event,
        )
        await self.codec.prepare()
        headers, value = self.codec.encode(envelope)
        topic = self.topic(topics.events(domain))
        await self.send([Outbound(topic=topic, key=key.encode(), value=value, headers=headers)])

    async def handle_route(self, path: str, body: JSONObject) -> JSONObject:
        """Run the participant's ``POST`` route ``path`` (as its web endpoint would)."""
        if self.participant is None or path not in self.participant.routes:
            raise LookupError(f"service {self.name} has no route {path}")
        return await self.participant.routes[path](self, body)

    async def invariants(self) -> list[str]:
        """The broken business invariants of the store (empty: all hold)."""
        check = None if self.participant is None else self.participant.invariants
        return [] if check is None else await check(self.store.db)

    # -- running -----------------------------------------------------------------------

    def _topics(self) -> list[str]:
        """What the service consumes: its commands, then the events it follows."""
        participant = self.participant
        if participant is None:
            return [self.commands_topic]
        names = [self.commands_topic] if participant.handlers or self._intercept else []
        return names + sorted({s.topic for s in participant.subscriptions})

    async def start(self) -> None:
        """Open the store (seeding it once), create the missing topics, start the
        producer. `close` undoes it."""
        participant = self.participant
        if participant is not None:
            await prepare_store(self.store, participant, None)
        names = {*self._topics(), topics.service_dead_letters(self.name)}
        if participant is not None:
            names.update(participant.publishes)
        self.broker.create_topics([TopicSpec(n, self.partitions) for n in sorted(names)])
        await self._producer.start()

    async def run(self) -> None:
        """Run ``on_start``, then consume until `stop` (after `start`)."""
        if self.participant is not None and self.participant.on_start is not None:
            await self.participant.on_start(self)
        await self._consume()

    def timers(self) -> Coroutine[Any, Any, None] | None:
        """The participant's timers, to run as a task until cancelled (None: it has none)."""
        participant = self.participant
        if participant is None or not participant.timers:
            return None
        return run_timers(participant, self.store, self._clock)

    async def close(self) -> None:
        """Stop the producer and close the store; idempotent."""
        await self._producer.stop()
        if self.participant is not None:
            await self.store.close()

    def stop(self) -> None:
        """Ask `run` to return after the poll in flight; idempotent."""
        self._stopping.set()

    async def _consume(self) -> None:
        consumer = self._transport.group_consumer(
            f"{self.name}-service",
            self._topics(),
            _NoListener(),
            session_timeout=SESSION_TIMEOUT,
            fetch_wait=POLL,
        )
        await consumer.start()
        try:
            while not self._stopping.is_set():
                data = await consumer.poll(POLL, MAX_BATCH)
                if consumer.assignment():
                    self.ready.set()
                if not data:
                    continue
                await self._batch(data)
                try:
                    await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in data.items()})
                except NotAssigned as exc:
                    # The next owner gets the records again and replays the stored replies.
                    log.info("%s: offset commit refused (%s)", self.name, exc)
                    continue
                if self.participant is not None and self.participant.after_command is not None:
                    await self.participant.after_command(self)
        finally:
            await consumer.stop()

    async def _batch(self, data: dict[TP, list[Consumed]]) -> None:
        records = [_incoming(r) for rs in data.values() for r in rs]
        left: list[Incoming] = []
        for record in records:
            answered = None
            if self._intercept is not None and record.topic == self.commands_topic:
                answered = self._intercept(record)
            if answered is None:
                left.append(record)
            else:
                await self.send(answered)
        if self.processor is None:
            if left:
                log.warning("%s: %d records no one answers", self.name, len(left))
            return
        # Each transaction's records are committed to SQLite before their replies go.
        async for outs in self.processor.batches(left):
            await self.send([o for each in outs for o in each])


def _incoming(record: Consumed) -> Incoming:
    return Incoming(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=list(record.headers),
    )
