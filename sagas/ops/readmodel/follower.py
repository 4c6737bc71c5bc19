"""Reads the changelogs and the outcome events into the read model.

The follower is a consumer without a group: it assigns itself every partition of every
``<prefix>sagas.<saga>.changelog`` topic on the cluster (so it sees the sagas of every
engine process, whichever owns them) and of ``<prefix>sagas.events``, reads with
``read_committed`` (an aborted engine transaction never shows), and keeps its offsets in
its own SQLite file, written with the rows they produced.

A record it cannot read (an outcome event that does not decode, a changelog record that
is not the engine's JSON) goes to ``<prefix>sagas.readmodel.dlq`` with the reason in
``dlq_*`` headers before the offsets past it are stored; each read model file does so
once. A schema registry that cannot be reached is not the record's fault: the poll is
put back (nothing stored, nothing dead-lettered) and read again, in order, once the
registry answers; the follower warns once per outage.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from sagas.contracts import deadletters, topics
from sagas.contracts.codec import Codec
from sagas.contracts.errors import ContractError, MessageError, RegistryError
from sagas.contracts.outage import RegistryOutage
from sagas.ops.errors import KafkaUnavailableError
from sagas.ops.kafka import Topics
from sagas.ops.readmodel.store import Batch, OpsStore, Outcome, iso
from sagas.runtime import changelog
from sagas.runtime.errors import CorruptChangelog
from sagas.runtime.store import Changes

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]
"""Called with (records read, records to read) while catching up."""

MAX_DEAD_LETTER_VALUE = 512 * 1024
"""A larger value is left out of its dead letter (``dlq_truncated`` keeps its length),
so the dead letter stays under the producer's default 1 MiB request size."""

REGISTRY_PAUSE = 1.0
"""Most seconds a poll waits, once the schema registry could not be reached, before the
same records are read again."""

REDISCOVER_EVERY = 5.0
"""Seconds between two looks for new saga changelogs while following."""


@dataclass(frozen=True)
class CatchUp:
    """How a catch-up went."""

    read: int
    behind: int
    """Records still unread when the deadline passed (0: caught up)."""
    seconds: float

    @property
    def caught_up(self) -> bool:
        return self.behind == 0


class Follower:
    """Keeps an `OpsStore` up to date with Kafka. Use ``async with``.

    Args:
        store: the read model's file.
        bootstrap_servers: Kafka.
        codec: decodes the outcome events.
        topic_prefix: ``SAGAS_TOPIC_PREFIX``.
        client_options: extra aiokafka options (security).
    """

    def __init__(
        self,
        store: OpsStore,
        bootstrap_servers: str,
        codec: Codec,
        *,
        topic_prefix: str = "",
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self._store = store
        self._bootstrap = bootstrap_servers
        self._codec = codec
        self._prefix = topic_prefix
        self._options = client_options or {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._rejected: list[tuple[ConsumerRecord[Any, Any], ContractError]] = []
        self.dead_lettered = 0
        """Records this follower put on the read model's dead-letter topic."""
        self.registry = RegistryOutage(log, "read model: ", "waiting")
        """Polls put back because the schema registry could not be reached."""
        self._assigned: set[TopicPartition] = set()
        self._next: dict[TopicPartition, int] = {}
        self._cond = asyncio.Condition()
        self.version = 0
        """Bumped whenever new rows were written (the dashboard's live updates)."""

    async def __aenter__(self) -> Follower:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            **self._options,
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            with contextlib.suppress(KafkaError):
                await consumer.stop()
            raise KafkaUnavailableError(f"cannot reach Kafka at {self._bootstrap}: {exc}") from exc
        self._consumer = consumer
        self._next = {
            TopicPartition(t, p): n for (t, p), n in (await self._store.offsets()).items()
        }

    async def stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await consumer.stop()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    def _saga_of(self, topic: str, kind: Callable[[str], str] = topics.changelog) -> str | None:
        """The saga name of a changelog (or ``kind``) topic of ours, else None."""
        name = topics.logical(self._prefix, topic)
        return None if name is None else topics.saga_of(name, kind)

    async def discover(self) -> None:
        """Assign every partition of the saga changelogs and of the outcome topic."""
        consumer = self._require()
        outcomes = topics.physical(self._prefix, topics.OUTCOMES)
        async with Topics(self._bootstrap, self._options) as admin:
            found = await admin.partitions(
                lambda t: (
                    t == outcomes
                    or self._saga_of(t) is not None
                    or self._saga_of(t, topics.history) is not None
                )
            )
        tps = {TopicPartition(t, p) for t, parts in found.items() for p in parts}
        if tps == self._assigned:
            return
        consumer.assign(sorted(tps, key=lambda tp: (tp.topic, tp.partition)))
        for tp in tps:
            if tp in self._next:
                consumer.seek(tp, self._next[tp])
            else:
                await consumer.seek_to_beginning(tp)
        self._assigned = tps
        log.info("read model follows %d partitions of %d topics", len(tps), len(found))

    async def catch_up(self, deadline: timedelta, progress: Progress | None = None) -> CatchUp:
        """Read up to the end (the last stable offsets as of now) or until the deadline."""
        began = time.monotonic()
        consumer = self._require()
        await self.discover()
        if not self._assigned:
            return CatchUp(0, 0, 0.0)
        ends = await consumer.end_offsets(list(self._assigned))
        behind = await self._behind(ends)
        total, read = behind, 0
        end_at = began + deadline.total_seconds()
        while behind > 0 and (left := end_at - time.monotonic()) > 0:
            read += await self.poll(wait=min(left, 0.5))
            behind = await self._behind(ends)
            if progress is not None:
                progress(total - behind, total)
        return CatchUp(read, behind, time.monotonic() - began)

    async def _behind(self, ends: dict[TopicPartition, int]) -> int:
        consumer = self._require()
        behind = 0
        for tp, end in ends.items():
            behind += max(0, end - await consumer.position(tp))
        return behind

    async def poll(self, wait: float = 0.5) -> int:
        """Read what has arrived (waiting up to ``wait`` s); return the records read."""
        consumer = self._require()
        if not self._assigned:
            return 0
        data = await consumer.getmany(timeout_ms=int(wait * 1000), max_records=2000)
        batch = Batch()
        read = 0
        try:
            # The registry is asked off the event loop, before anything is decoded.
            await self._codec.resolve(
                r.value for tp, rs in data.items() if self._is_outcomes(tp.topic) for r in rs
            )
            for tp, records in data.items():
                read += len(records)
                self._decode(tp, records, batch)
        except RegistryError as exc:
            # Not the records' fault: none is dead-lettered nor stored. Every partition
            # goes back to the first record of this poll, so they are read again, in
            # order, once the registry answers; nothing after them is stored first.
            self._rejected.clear()
            for tp, records in data.items():
                consumer.seek(tp, records[0].offset)
            self.registry.waited(exc)
            await asyncio.sleep(min(wait, REGISTRY_PAUSE))  # backoff while it is down
            return 0
        self.registry.answered()
        # Dead letters first: the offsets past a rejected record are stored only once its
        # dead letter is on Kafka (a failure here rewinds to the stored offsets).
        try:
            await self._send_rejected()
        except BaseException:
            for tp in self._assigned:
                if tp in self._next:
                    consumer.seek(tp, self._next[tp])
                else:
                    await consumer.seek_to_beginning(tp)
            raise
        for tp in self._assigned:
            position = await consumer.position(tp)
            if self._next.get(tp) != position:
                batch.offsets[(tp.topic, tp.partition)] = position
                self._next[tp] = position
        if batch.offsets or batch.instances or batch.outcomes or batch.history:
            await self._store.apply(batch)
        if batch.instances or batch.outcomes:
            async with self._cond:
                self.version += 1
                self._cond.notify_all()
        return read

    def _decode(
        self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]], batch: Batch
    ) -> None:
        moved_from = self._saga_of(tp.topic, topics.history)
        if moved_from is not None:
            for record in records:
                try:
                    doc = json.loads(record.value or b"")
                    batch.history.extend(
                        (moved_from, str(doc["saga_id"]), int(e["seq"]), json.dumps(e))
                        for e in doc["entries"]
                    )
                except (ValueError, KeyError, TypeError) as exc:
                    error = MessageError(
                        f"not a history record: {exc!r:.200}", reason="history-invalid"
                    )
                    self._reject(record, error)
            return
        saga = self._saga_of(tp.topic)
        if saga is not None:
            changes = Changes(saga, tp.partition)
            for record in records:
                try:
                    changelog.apply_record(changes, record.key, record.value)
                except CorruptChangelog as exc:
                    error = MessageError(
                        f"not a changelog record: {exc.why}", reason="changelog-invalid"
                    )
                    self._reject(record, error)
            batch.instances.extend(changes.instances)
            return
        for record in records:
            outcome = self._outcome(record)
            if outcome is not None:
                batch.outcomes.append(outcome)

    def _is_outcomes(self, topic: str) -> bool:
        return topic == topics.physical(self._prefix, topics.OUTCOMES)

    def _outcome(self, record: ConsumerRecord[Any, Any]) -> Outcome | None:
        try:
            envelope = self._codec.decode(record.headers or [], record.value)
        except RegistryError:
            raise  # the registry is down: `poll` reads this record again later
        except ContractError as exc:
            self._reject(record, exc)
            return None
        p = envelope.payload
        return Outcome(
            id=envelope.id,
            type=envelope.type.rsplit(".", 1)[-1],
            saga_name=str(getattr(p, "saga_name", "")),
            saga_id=str(getattr(p, "saga_id", "")),
            at=iso(getattr(p, "at", envelope.time)),
            step=getattr(p, "step", None) or None,
            reason=getattr(p, "reason", None),
        )

    def _reject(self, record: ConsumerRecord[Any, Any], error: ContractError) -> None:
        error.located(record.topic, record.partition, record.offset)
        log.warning("read model: dead-lettering %s", error)
        self._rejected.append((record, error))

    async def _send_rejected(self) -> None:
        if not self._rejected:
            return
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self._bootstrap, enable_idempotence=True, **self._options
            )
            await producer.start()
            self._producer = producer
        topic = topics.physical(self._prefix, topics.READ_MODEL_DEAD_LETTERS)
        try:
            for record, error in self._rejected:
                value = record.value
                headers = [(k, v or b"") for k, v in record.headers or ()]
                headers += error.dlq_headers()
                if value is not None and len(value) > MAX_DEAD_LETTER_VALUE:
                    headers.append((deadletters.TRUNCATED, str(len(value)).encode()))
                    value = b""
                await self._producer.send_and_wait(topic, value, key=record.key, headers=headers)
                self.dead_lettered += 1
        finally:
            self._rejected.clear()

    async def run(self, stop: asyncio.Event) -> None:
        """Follow until ``stop`` is set; Kafka errors are logged and retried."""
        last_look = 0.0
        while not stop.is_set():
            try:
                if time.monotonic() - last_look > REDISCOVER_EVERY:
                    await self.discover()
                    last_look = time.monotonic()
                if not self._assigned:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
                    continue
                await self.poll(wait=0.5)
            except (KafkaError, KafkaUnavailableError) as exc:
                log.warning("read model: %r; retrying", exc)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 2.0)

    async def wait_change(self, seen: int, wait: float) -> int:
        """Wait until `version` passes ``seen`` (or ``wait`` s); return the version."""
        async with self._cond:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._cond.wait_for(lambda: self.version > seen), wait)
            return self.version

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("the follower is not started")
        return self._consumer
