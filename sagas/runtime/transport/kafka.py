"""The `Transport` on Apache Kafka, with aiokafka.

The only place that knows aiokafka's types, the topic prefix (logical names above,
``<prefix><name>`` on the broker) and the security options (`sagas.kafka_security`).
aiokafka's errors are translated here into the runtime's (`sagas.runtime.errors`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.cluster import ClusterMetadata
from aiokafka.coordinator.assignors.abstract import AbstractPartitionAssignor
from aiokafka.coordinator.protocol import (
    ConsumerProtocolMemberAssignment,
    ConsumerProtocolMemberMetadata,
)
from aiokafka.errors import (
    CommitFailedError,
    IllegalOperation,
    IllegalStateError,
    KafkaError,
    ProducerFenced,
)
from aiokafka.structs import RecordMetadata

from sagas.contracts import topics
from sagas.runtime.errors import FencedError, InDoubt, NotAssigned, TransportError
from sagas.runtime.producers import abandon
from sagas.runtime.topics import TopicSpec, ensure_topics
from sagas.runtime.transport.assignment import Heeding, deal, decode, encode
from sagas.runtime.transport.base import Rebalance
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord

log = logging.getLogger(__name__)

STOP_TIMEOUT = timedelta(seconds=5)
"""Longest wait for a client to stop."""

TXN_RETRY_BACKOFF_MS = 10
"""Backoff of the transactional producers' retries. A request refused with
CONCURRENT_TRANSACTIONS (markers of the previous transaction still being written) is
retried after it; aiokafka's default, 100 ms, was the p99 of a transaction."""

READ_FETCH_BYTES = 16 << 20
"""Most bytes one catch-up fetch returns: a changelog record is a whole instance head,
and the default 1 MiB made catch-up wait on many round trips."""

READ_FETCH_WAIT_MS = 20
"""How long the broker holds a catch-up fetch with nothing to return; the offset
requests of the next catch-up queue behind it on the connection."""


class KafkaTransport:
    """Clients of one Kafka cluster.

    Args:
        bootstrap_servers: the cluster.
        prefix: prepended to every topic name on the broker (several systems, or test
            runs, on one cluster).
        options: aiokafka keyword arguments for every client (security, from
            `sagas.kafka_security.client_options`).
    """

    def __init__(
        self, bootstrap_servers: str, prefix: str = "", options: Mapping[str, Any] | None = None
    ) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.prefix = prefix
        self._options = dict(options or {})

    def physical(self, topic: str) -> str:
        """The broker's name of ``topic``."""
        return topics.physical(self.prefix, topic)

    def logical(self, topic: str) -> str:
        """The runtime's name of the broker's ``topic``."""
        name = topics.logical(self.prefix, topic)
        return topic if name is None else name

    def group_consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        listener: Rebalance,
        *,
        session_timeout: timedelta,
        fetch_wait: timedelta,
    ) -> KafkaGroupConsumer:
        return KafkaGroupConsumer(self, group_id, topics, listener, session_timeout, fetch_wait)

    def transactional_producer(
        self, transactional_id: str, *, request_timeout: timedelta
    ) -> KafkaTransactionalProducer:
        return KafkaTransactionalProducer(self, transactional_id, request_timeout)

    def idempotent_producer(
        self, name: str, *, request_timeout: timedelta
    ) -> KafkaIdempotentProducer:
        return KafkaIdempotentProducer(self, name, request_timeout)

    def partition_reader(self) -> KafkaPartitionReader:
        return KafkaPartitionReader(self)

    async def ensure_topics(self, specs: Sequence[TopicSpec], replication_factor: int) -> list[str]:
        physical = [
            TopicSpec(self.physical(s.name), s.partitions, s.configs, s.co_partitioned)
            for s in specs
        ]
        created = await ensure_topics(
            self.bootstrap_servers, physical, replication_factor, self._options
        )
        return [self.logical(name) for name in created]

    async def close(self) -> None:
        return None

    def options(self) -> dict[str, Any]:
        """The aiokafka options of every client (``bootstrap_servers`` and security)."""
        return {"bootstrap_servers": self.bootstrap_servers, **self._options}

    def record(self, r: ConsumerRecord[Any, Any]) -> Consumed:
        headers = tuple((k, v or b"") for k, v in r.headers or ())
        return Consumed(
            self.logical(r.topic), r.partition, r.offset, r.key, r.value, headers, r.timestamp
        )


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, transport: KafkaTransport, listener: Rebalance) -> None:
        self._transport = transport
        self._listener = listener

    def _tps(self, tps: Sequence[TopicPartition]) -> list[TP]:
        return [TP(self._transport.logical(tp.topic), tp.partition) for tp in tps]

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._listener.revoked(self._tps(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._listener.assigned(self._tps(assigned))


class CoPartitionedAssignor(AbstractPartitionAssignor):  # type: ignore[misc]  # aiokafka is untyped
    """The engine's rule (`sagas.runtime.transport.assignment.deal`) as an aiokafka
    assignor: partition ``k`` of every topic to the same member, among the members that
    read every topic of the group; what the others are told (stand by, or the group is
    mixed) goes in the ``user_data`` of their assignment.

    aiokafka calls the assignor's classmethods on the class it was given, so a consumer
    that hears its note uses a subclass of its own (`telling`).
    """

    name = "sagas-copartitioned"
    version = 0

    @classmethod
    def assign(
        cls,
        cluster: ClusterMetadata,
        members: Mapping[str, ConsumerProtocolMemberMetadata],
    ) -> dict[str, ConsumerProtocolMemberAssignment]:
        subscriptions = {member: meta.subscription for member, meta in members.items()}
        topics = {t for subscription in subscriptions.values() for t in subscription}
        partitions = {t: ps for t in topics if (ps := cluster.partitions_for_topic(t))}
        assignment: dict[str, ConsumerProtocolMemberAssignment] = {}
        for member, dealt in deal(subscriptions, partitions).items():
            by_topic: dict[str, list[int]] = {}
            for tp in sorted(dealt.tps):
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            assignment[member] = ConsumerProtocolMemberAssignment(
                cls.version, sorted(by_topic.items()), encode(dealt.note)
            )
        return assignment

    @classmethod
    def metadata(cls, topics: Iterable[str]) -> ConsumerProtocolMemberMetadata:
        return ConsumerProtocolMemberMetadata(cls.version, list(topics), b"")

    @classmethod
    def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
        return None


def telling(hear: Callable[[bytes], None]) -> type[CoPartitionedAssignor]:
    """A `CoPartitionedAssignor` of one consumer's own (same `name`, so the group's
    protocol matches) whose ``on_assignment`` passes the ``user_data`` of each assignment
    to ``hear``: aiokafka calls it when a generation's assignment arrives
    (``GroupCoordinator._on_join_complete``), before the rebalance listener hears of the
    partitions."""

    class Telling(CoPartitionedAssignor):
        @classmethod
        def on_assignment(cls, assignment: ConsumerProtocolMemberAssignment) -> None:
            hear(assignment.user_data)

    return Telling


class KafkaGroupConsumer:
    """`GroupConsumer` on an `AIOKafkaConsumer` (read_committed, no auto commit)."""

    def __init__(
        self,
        transport: KafkaTransport,
        group_id: str,
        topic_names: Sequence[str],
        listener: Rebalance,
        session_timeout: timedelta,
        fetch_wait: timedelta,
    ) -> None:
        self.group_id = group_id
        self._t = transport
        self._heeding = Heeding(group_id)
        session_ms = int(session_timeout.total_seconds() * 1000)
        self._consumer = AIOKafkaConsumer(
            group_id=group_id,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_ms,
            heartbeat_interval_ms=max(session_ms // 5, 500),
            # An idle fetch waits no longer than this: requests such as a rewind's offset
            # lookup queue behind it on the connection (aiokafka's default: 500 ms).
            fetch_max_wait_ms=int(fetch_wait.total_seconds() * 1000),
            # Partition k of every topic to one member: a unit (sagas.runtime.partitioning).
            partition_assignment_strategy=(telling(self._hear),),
            **transport.options(),
        )
        self._consumer.subscribe(
            [transport.physical(t) for t in topic_names], listener=_Listener(transport, listener)
        )

    def _tp(self, tp: TP) -> TopicPartition:
        return TopicPartition(self._t.physical(tp.topic), tp.partition)

    def _hear(self, user_data: bytes) -> None:
        self._heeding.received(decode(user_data, self._t.logical))

    async def start(self) -> None:
        try:
            await self._consumer.start()
        except KafkaError as exc:
            raise TransportError(
                f"cannot start the consumer of group {self.group_id}: {exc!r}"
            ) from exc

    async def stop(self) -> None:
        try:
            async with asyncio.timeout(STOP_TIMEOUT.total_seconds()):
                await self._consumer.stop()
        except (KafkaError, TimeoutError) as exc:
            log.warning("the consumer of group %s did not stop cleanly (%r)", self.group_id, exc)

    async def poll(self, wait: timedelta, max_records: int) -> dict[TP, list[Consumed]]:
        # A note arrives with a rebalance, which runs beside (or inside) the fetch: heard
        # before and after it. Records fetched are never dropped here: a standby
        # member's assignment is empty, a mixed one's too.
        self._heeding.heed()
        data = await self._consumer.getmany(
            timeout_ms=int(wait.total_seconds() * 1000), max_records=max_records
        )
        self._heeding.heed()
        record = self._t.record
        return {
            TP(self._t.logical(tp.topic), tp.partition): [record(r) for r in rs]
            for tp, rs in data.items()
        }

    def assignment(self) -> frozenset[TP]:
        return frozenset(
            TP(self._t.logical(tp.topic), tp.partition) for tp in self._consumer.assignment()
        )

    def pause(self, tps: Sequence[TP]) -> None:
        assigned = self._consumer.assignment()
        self._consumer.pause(*(p for p in map(self._tp, tps) if p in assigned))

    def resume(self, tps: Sequence[TP]) -> None:
        assigned = self._consumer.assignment()
        self._consumer.resume(*(p for p in map(self._tp, tps) if p in assigned))

    def seek(self, tp: TP, offset: int) -> None:
        try:
            self._consumer.seek(self._tp(tp), offset)
        except IllegalStateError as exc:
            raise NotAssigned(f"{tp} is no longer assigned") from exc

    async def committed(self, tp: TP) -> int:
        physical = self._tp(tp)
        try:
            offset = await self._consumer.committed(physical)
            if offset is None or offset < 0:
                # Resolved now, not lazily: a lazy reset could land after records were
                # already processed and replay them.
                offset = (await self._consumer.beginning_offsets([physical]))[physical]
        except IllegalStateError as exc:
            raise NotAssigned(f"{tp} is no longer assigned") from exc
        except KafkaError as exc:
            raise TransportError(f"cannot read the committed offset of {tp}: {exc!r}") from exc
        return int(offset)

    def lag(self, tp: TP, position: int) -> int | None:
        physical = self._tp(tp)
        if physical not in self._consumer.assignment():
            return None  # aiokafka asserts the partition is assigned
        # Not `or`: a last stable offset of 0 (an open transaction at the head) is known.
        end = self._consumer.last_stable_offset(physical)
        if end is None:
            end = self._consumer.highwater(physical)
        return None if end is None else max(int(end) - position, 0)

    async def commit(self, offsets: Mapping[TP, int]) -> None:
        physical = {self._tp(tp): offset for tp, offset in offsets.items()}
        try:
            # With the member's generation: refused once the group has moved on.
            await self._consumer.commit(physical)
        except (CommitFailedError, IllegalStateError) as exc:
            raise NotAssigned(f"offsets of group {self.group_id} refused: {exc!r}") from exc
        except KafkaError as exc:
            raise TransportError(f"cannot commit offsets of {self.group_id}: {exc!r}") from exc


class KafkaTransactionalProducer:
    """`TransactionalProducer` on an `AIOKafkaProducer` with a transactional id."""

    def __init__(
        self, transport: KafkaTransport, transactional_id: str, timeout: timedelta
    ) -> None:
        self.transactional_id = transactional_id
        self._t = transport
        self._fenced: KafkaError | None = None
        self._producer = AIOKafkaProducer(
            transactional_id=transactional_id,
            # A record is sent as soon as it is queued: the commit waits for it anyway.
            linger_ms=0,
            retry_backoff_ms=TXN_RETRY_BACKOFF_MS,
            # Requests end within the commit bound, so an abandoned producer winds down
            # soon after it is dropped.
            request_timeout_ms=int(timeout.total_seconds() * 1000),
            **transport.options(),
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
        except ProducerFenced as exc:
            raise FencedError(f"{self.transactional_id} was fenced while starting") from exc
        except (KafkaError, OSError) as exc:
            raise TransportError(f"cannot start producer {self.transactional_id}: {exc!r}") from exc

    async def begin(self) -> None:
        with self._translated("begin"):
            await self._producer.begin_transaction()

    async def send(self, record: OutRecord) -> asyncio.Future[Delivered]:
        with self._translated("send"):
            sent = await _queue(self._producer, self._t, record)
        return asyncio.ensure_future(self._delivered(sent))

    async def _delivered(self, sent: asyncio.Future[RecordMetadata]) -> Delivered:
        with self._translated("deliver"):
            meta = await sent
        return Delivered(self._t.logical(meta.topic), meta.partition, meta.offset)

    async def send_offsets(self, offsets: Mapping[TP, int], group_id: str) -> None:
        physical = {
            TopicPartition(self._t.physical(tp.topic), tp.partition): o for tp, o in offsets.items()
        }
        with self._translated("send offsets"):
            await self._producer.send_offsets_to_transaction(physical, group_id)

    async def commit(self) -> None:
        with self._translated("commit"):
            await self._producer.commit_transaction()

    async def abort(self) -> None:
        with self._translated("abort"):
            await self._producer.abort_transaction()

    async def stop(self) -> None:
        await _stop(self._producer, self.transactional_id)

    async def abandon(self) -> None:
        await abandon(self._producer)

    @contextlib.contextmanager
    def _translated(self, what: str) -> Any:
        if self._fenced is not None:
            # aiokafka's transaction manager is in its fatal state now: a later call
            # would fail its state-transition assertion instead (an AssertionError).
            raise FencedError(f"{self.transactional_id} was fenced ({what})") from self._fenced
        try:
            yield
        except (ProducerFenced, IllegalOperation) as exc:
            # aiokafka reports a fence as IllegalOperation once its sender saw it.
            self._fenced = exc
            raise FencedError(f"{self.transactional_id} was fenced ({what}): {exc!r}") from exc
        except (KafkaError, OSError) as exc:
            raise InDoubt(f"{self.transactional_id}: {what} failed: {exc!r}") from exc


class KafkaIdempotentProducer:
    """`Producer` on an `AIOKafkaProducer` with idempotence on (``acks=all``)."""

    def __init__(self, transport: KafkaTransport, name: str, timeout: timedelta) -> None:
        self.name = name
        self._t = transport
        self._producer = AIOKafkaProducer(
            enable_idempotence=True,
            acks="all",
            # A record is sent as soon as it is queued: its batch waits for it.
            linger_ms=0,
            request_timeout_ms=int(timeout.total_seconds() * 1000),
            **transport.options(),
        )

    async def start(self) -> None:
        try:
            await self._producer.start()
        except (KafkaError, OSError) as exc:
            raise TransportError(f"cannot start producer {self.name}: {exc!r}") from exc

    async def send(self, record: OutRecord) -> asyncio.Future[Delivered]:
        try:
            sent = await _queue(self._producer, self._t, record)
        except (KafkaError, OSError) as exc:
            raise TransportError(f"{self.name}: send failed: {exc!r}") from exc
        return asyncio.ensure_future(self._delivered(sent))

    async def _delivered(self, sent: asyncio.Future[RecordMetadata]) -> Delivered:
        try:
            meta = await sent
        except (KafkaError, OSError) as exc:
            raise TransportError(f"{self.name}: not delivered: {exc!r}") from exc
        return Delivered(self._t.logical(meta.topic), meta.partition, meta.offset)

    async def stop(self) -> None:
        await _stop(self._producer, self.name)

    async def abandon(self) -> None:
        await abandon(self._producer)


async def _queue(
    producer: AIOKafkaProducer, transport: KafkaTransport, record: OutRecord
) -> asyncio.Future[RecordMetadata]:
    """Queue ``record`` on ``producer`` under its physical topic name."""
    sent: asyncio.Future[RecordMetadata] = await producer.send(
        transport.physical(record.topic),
        record.value,
        key=record.key,
        headers=list(record.headers),
        partition=record.partition,
    )
    return sent


async def _stop(producer: AIOKafkaProducer, name: str) -> None:
    """Stop ``producer`` after delivering what it holds; abandon it past `STOP_TIMEOUT`."""
    try:
        async with asyncio.timeout(STOP_TIMEOUT.total_seconds()):
            await producer.stop()
    except KafkaError:
        pass
    except TimeoutError:
        log.warning("producer %s did not stop within %s: abandoning it", name, STOP_TIMEOUT)
        await abandon(producer)


class KafkaPartitionReader:
    """`PartitionReader` on one `AIOKafkaConsumer`, assigned one partition at a time.

    Starting a consumer costs a metadata round trip (about a second on a busy machine);
    an engine taking many partitions in one rebalance must not pay it per partition.
    """

    def __init__(self, transport: KafkaTransport) -> None:
        self._t = transport
        self._consumer: AIOKafkaConsumer | None = None
        self._turn = asyncio.Lock()

    async def _ready(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                isolation_level="read_committed",
                enable_auto_commit=False,
                max_partition_fetch_bytes=READ_FETCH_BYTES,
                fetch_max_bytes=READ_FETCH_BYTES,
                fetch_max_wait_ms=READ_FETCH_WAIT_MS,
                **self._t.options(),
            )
            try:
                await consumer.start()
            except KafkaError as exc:
                raise TransportError(f"cannot start the changelog reader: {exc!r}") from exc
            self._consumer = consumer
        return self._consumer

    async def end_offset(self, tp: TP) -> int:
        physical = TopicPartition(self._t.physical(tp.topic), tp.partition)
        async with self._turn:
            consumer = await self._ready()
            consumer.assign([physical])
            try:
                return int((await consumer.end_offsets([physical]))[physical])
            except KafkaError as exc:
                raise TransportError(f"cannot read the end of {tp}: {exc!r}") from exc
            finally:
                consumer.unsubscribe()

    async def read(
        self, tp: TP, start: int, end: int, max_records: int
    ) -> AsyncIterator[tuple[list[Consumed], int]]:
        physical = TopicPartition(self._t.physical(tp.topic), tp.partition)
        async with self._turn:
            consumer = await self._ready()
            consumer.assign([physical])
            try:
                consumer.seek(physical, start)
                while (position := await consumer.position(physical)) < end:
                    fetched = await consumer.getmany(
                        physical, timeout_ms=1000, max_records=max_records
                    )
                    batch = [self._t.record(r) for r in fetched.get(physical, [])]
                    # Transaction markers move the position, not the records.
                    after = max(
                        batch[-1].offset + 1 if batch else position,
                        await consumer.position(physical),
                    )
                    yield batch, after
            except KafkaError as exc:
                raise TransportError(f"cannot read {tp}: {exc!r}") from exc
            finally:
                # Unassigned, the reader fetches nothing more: it buffers nothing of the
                # records the engine goes on writing to the changelog.
                consumer.unsubscribe()

    async def close(self) -> None:
        """Idempotent; bounded: a stop right after a catch-up once hung in aiokafka's
        fetch routine (it swallowed its own cancellation)."""
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            async with asyncio.timeout(STOP_TIMEOUT.total_seconds()):
                await consumer.stop()
        except TimeoutError:
            log.warning("the changelog reader did not stop within %s; left behind", STOP_TIMEOUT)
