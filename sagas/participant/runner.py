"""The participant's Kafka loop on aiokafka: consume, apply, reply, then commit.

One consumer (the service's group, ``read_committed``: an aborted or fenced engine
transaction's commands are never delivered) and one idempotent producer (``acks=all``).
Per poll (up to `MAX_BATCH` records, every partition's in order):

1. the records are applied in one SQLite transaction (`HandleBatch`, see
   `sagas.participant.processor`), or a few when slow handlers make it last longer than
   `sagas.participant.processor.TRANSACTION_TIME`;
2. what each transaction's records yield (replies, dead letters) is sent once it is
   committed, without waiting record by record;
3. once every send is acknowledged, the poll's offsets are committed, in one request.

A schema registry that cannot be reached (`RegistryError`, asked off the event loop by
the processor) delays the batch: its offsets are not committed, the consumer goes back
to its first records and hands them over again after `RETRY_PAUSE`, until the registry
answers; nothing is dead-lettered and the service keeps running (one warning an outage).

So a command's reply is on Kafka before the command counts as consumed, and its
processed row is on disk before its reply is sent; a command delivered again after a
crash in between replays its stored reply (the processor deduplicates by ``ce_id``).

A rebalance waits for the batch in flight (the listener takes the same lock), so
nothing is committed for a partition the service no longer owns. `stop` ends `run`
after the batch in flight, its offsets committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import RecordMetadata

from sagas.contracts.errors import RegistryError
from sagas.contracts.outage import RegistryOutage
from sagas.participant.processor import Incoming
from sagas.participant.store import Outbound

log = logging.getLogger(__name__)

HandleBatch = Callable[[Sequence[Incoming]], AsyncIterator[list[list[Outbound]]]]
"""Apply one poll's records; yields what to produce for each, in order, one list per
committed SQLite transaction."""

AfterBatch = Callable[[], Awaitable[None]]

POLL_TIMEOUT = timedelta(milliseconds=100)
"""How long a poll waits for records before it returns empty (and `stop` is seen)."""

MAX_BATCH = 500
"""Most records one poll hands over."""

STOP_TIMEOUT = timedelta(seconds=5)
"""Longest wait for each Kafka client to stop."""

RETRY_PAUSE = timedelta(seconds=1)
"""Pause before a batch whose replies Kafka did not take is handled again."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, lock: asyncio.Lock) -> None:
        self._lock = lock

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # The batch in flight commits (or fails) before the group moves its partitions.
        async with self._lock:
            return

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        return


class KafkaRunner:
    """Consumes ``topics`` as group ``group_id`` and produces what ``handle`` returns.

    Args:
        bootstrap: Kafka bootstrap servers.
        group_id: the service's consumer group.
        topics: the physical topics to consume.
        handle: applies one poll's records (`ParticipantService.handle_batch`).
        after_batch: called after each batch's offsets were committed (e.g. to publish
            an outbox), or None.
        client_options: aiokafka security options (`sagas.kafka_security`).
    """

    def __init__(
        self,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        handle: HandleBatch,
        after_batch: AfterBatch | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._group_id = group_id
        self._topics = list(topics)
        self._handle = handle
        self._after_batch = after_batch
        self._options = client_options or {}
        self._lock = asyncio.Lock()
        self._stopping = asyncio.Event()
        self._ready = asyncio.Event()
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self.applied = 0
        """Records handled so far (duplicates and dead letters included)."""
        self.registry = RegistryOutage(log, "", "commands wait")
        """Batches handed over again because the schema registry could not be reached."""
        self._pause = timedelta(0)

    @property
    def producer(self) -> AIOKafkaProducer:
        """The running producer (for the service's own sends: outbox, routes)."""
        if self._producer is None:
            raise RuntimeError("the participant's producer is not running")
        return self._producer

    def _new_producer(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=True,
            acks="all",
            # Replies go out at once: a saga step waits for them.
            linger_ms=0,
            **self._options,
        )

    async def _renew_producer(self) -> None:
        old, self._producer = self._producer, None
        if old is not None:
            with contextlib.suppress(KafkaError, TimeoutError):
                async with asyncio.timeout(STOP_TIMEOUT.total_seconds()):
                    await old.stop()
        while not self._stopping.is_set():
            producer = self._new_producer()
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                log.warning("cannot start the reply producer (%r); retrying", exc)
                await producer.stop()
                await asyncio.sleep(RETRY_PAUSE.total_seconds())  # backoff while Kafka is down
                continue
            self._producer = producer
            return

    async def start(self) -> None:
        """Start the producer and the consumer (joining the group happens in `run`)."""
        producer = self._new_producer()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # An idle fetch returns within a poll, so `stop` and new commands are seen soon.
            fetch_max_wait_ms=int(POLL_TIMEOUT.total_seconds() * 1000),
            **self._options,
        )
        await producer.start()
        try:
            await consumer.start()
        except BaseException:
            await producer.stop()
            raise
        consumer.subscribe(self._topics, listener=_Listener(self._lock))
        self._producer, self._consumer = producer, consumer

    async def run(self) -> None:
        """Consume until `stop`; the clients stay open (`close` closes them)."""
        consumer = self._consumer
        if consumer is None:
            raise RuntimeError("start the runner before running it")
        while not self._stopping.is_set():
            data = await consumer.getmany(
                timeout_ms=int(POLL_TIMEOUT.total_seconds() * 1000), max_records=MAX_BATCH
            )
            if consumer.assignment():
                self._ready.set()
            if not data:
                continue
            async with self._lock:
                await self._batch(data)
            if self._pause:
                # Backoff outside the lock (a rebalance need not wait); `stop` ends it.
                pause, self._pause = self._pause, timedelta(0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), pause.total_seconds())

    async def wait_assigned(self) -> None:
        """Return once the group gave this runner its first partitions."""
        await self._ready.wait()

    def stop(self) -> None:
        """Ask `run` to return after the batch in flight; idempotent."""
        self._stopping.set()

    async def close(self) -> None:
        """Stop both clients, each within ``STOP_TIMEOUT`` (idempotent)."""
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        for client in (consumer, producer):
            if client is None:
                continue
            try:
                async with asyncio.timeout(STOP_TIMEOUT.total_seconds()):
                    await client.stop()
            except TimeoutError:
                log.warning("a Kafka client did not stop within %s; left behind", STOP_TIMEOUT)
            except KafkaError as exc:
                log.warning("stopping a Kafka client failed: %r", exc)

    async def _batch(self, data: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        producer, consumer = self.producer, self._consumer
        assert consumer is not None
        records = [
            Incoming(
                topic=r.topic,
                partition=r.partition,
                offset=r.offset,
                key=r.key,
                value=r.value,
                headers=list(r.headers or ()),
            )
            for rs in data.values()
            for r in rs
        ]
        sent: list[asyncio.Future[RecordMetadata]] = []
        try:
            # Each part is committed to SQLite before its replies are sent.
            async for outs in self._handle(records):
                for out in (o for each in outs for o in each):
                    sent.append(
                        await producer.send(out.topic, out.value, out.key, None, None, out.headers)
                    )
                await asyncio.sleep(0)  # a yield: the producer sends them while the next runs
        except RegistryError as exc:
            # The schema registry is down: the records are not bad, they wait. Go back to
            # the batch's first records (what a part already applied replays its stored
            # replies) and hand them over again after a pause.
            self.registry.waited(exc)
            await asyncio.gather(*sent, return_exceptions=True)
            for tp, rs in data.items():
                consumer.seek(tp, rs[0].offset)
            self._pause = RETRY_PAUSE
            return
        self.registry.answered()
        self.applied += len(records)
        # The offsets are committed only once every reply of the batch is on Kafka.
        try:
            await asyncio.gather(*sent)
        except KafkaError as exc:
            # Kafka is down or refused the replies: nothing is lost, the batch is simply
            # not consumed. Go back to its first records (the stored replies are
            # replayed) with a fresh producer, after a pause.
            log.warning("replies not delivered (%r); retrying the batch", exc)
            for tp, rs in data.items():
                consumer.seek(tp, rs[0].offset)
            await self._renew_producer()
            await asyncio.sleep(RETRY_PAUSE.total_seconds())  # backoff, not synchronisation
            return
        try:
            await consumer.commit({tp: rs[-1].offset + 1 for tp, rs in data.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            # A partition moved meanwhile: its next owner gets the records again and
            # replays the stored replies.
            log.info("offset commit refused (%r): a partition moved", exc)
            return
        if self._after_batch is not None:
            await self._after_batch()


@contextlib.asynccontextmanager
async def running(runner: KafkaRunner) -> Any:
    """``async with running(runner):`` starts it, runs it in a task, stops and closes it."""
    await runner.start()
    task = asyncio.create_task(runner.run())
    try:
        yield runner
    finally:
        runner.stop()
        try:
            await task
        finally:
            await runner.close()
