"""Dead letters: list and inspect ``sagas.<saga>.dlq`` and ``sagas.router.dlq``, replay.

A dead letter is the original record (bytes and headers untouched) plus ``dlq_*``
headers naming the reason and where it was read (``dlq_topic``, the physical topic).
Replaying produces the original key, value and headers, without the ``dlq_*`` ones, to
that topic; the engine drops a message it has already processed (by ``ce_id``), so a
replay never applies anything twice.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from sagas.contracts import deadletters, topics
from sagas.ops.errors import KafkaUnavailableError, NotFoundError, OpsError
from sagas.ops.kafka import Topics

MAX_SHOWN_BYTES = 64 * 1024
"""Most bytes of a dead letter's value `DeadLetter.detail` shows (an oversized record
is in its dead letter whole; the page and the API show its start and its size)."""


@dataclass(frozen=True)
class DeadLetter:
    """One record of a dead-letter topic."""

    topic: str
    """The logical dead-letter topic (without the topic prefix)."""
    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    @property
    def id(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k == name:
                return v.decode(errors="replace")
        return None

    @property
    def original_headers(self) -> list[tuple[str, bytes]]:
        return [(k, v) for k, v in self.headers if not k.startswith(deadletters.PREFIX)]

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat(),
            "reason": self.header(deadletters.REASON),
            "error": self.header(deadletters.ERROR),
            "message": self.header(deadletters.MESSAGE),
            "original_topic": self.header(deadletters.TOPIC),
            "original_partition": self.header(deadletters.PARTITION),
            "original_offset": self.header(deadletters.OFFSET),
            "type": self.header("ce_type"),
            "saga_id": self.header("saga_id"),
            "key": self.key.decode(errors="replace") if self.key is not None else None,
        }

    def detail(self) -> dict[str, Any]:
        """The summary plus every header and the value (hex, and as text when printable)."""
        shown = self.value[:MAX_SHOWN_BYTES] if self.value is not None else None
        return {
            **self.summary(),
            "headers": [[k, v.decode(errors="replace")] for k, v in self.headers],
            "value_hex": shown.hex() if shown is not None else None,
            "value_text": shown.decode(errors="replace") if shown is not None else None,
            "size": len(self.value or b""),
            "truncated": len(self.value or b"") > MAX_SHOWN_BYTES,
        }


def parse_id(letter_id: str) -> tuple[str, int, int]:
    """``topic:partition:offset`` back to its parts."""
    try:
        topic, partition, offset = letter_id.rsplit(":", 2)
        return topic, int(partition), int(offset)
    except ValueError as exc:
        raise OpsError(f"not a dead-letter id (topic:partition:offset): {letter_id!r}") from exc


class DeadLetters:
    """Reads and replays dead letters. Use ``async with``."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic_prefix: str = "",
        client_options: dict[str, Any] | None = None,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._prefix = topic_prefix
        self._options = client_options or {}
        self._consumer: AIOKafkaConsumer | None = None

    async def __aenter__(self) -> DeadLetters:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            isolation_level="read_committed",
            enable_auto_commit=False,
            **self._options,
        )
        try:
            await consumer.start()
        except KafkaError as exc:
            with contextlib.suppress(KafkaError):
                await consumer.stop()
            raise KafkaUnavailableError(f"cannot reach Kafka: {exc}") from exc
        self._consumer = consumer
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
            self._consumer = None

    def _logical(self, topic: str) -> str:
        name = topics.logical(self._prefix, topic)
        return topic if name is None else name

    async def _partitions(self, topic: str | None = None) -> dict[str, list[int]]:
        """Partitions of the dead-letter topics of the sagas, the router and the read
        model (physical names), or of ``topic``."""
        wanted = topics.physical(self._prefix, topic) if topic else None

        def accept(name: str) -> bool:
            if wanted is not None:
                return name == wanted
            logical = topics.logical(self._prefix, name)
            return logical is not None and topics.saga_of(logical, topics.dead_letters) is not None

        async with Topics(self._bootstrap, self._options) as admin:
            return await admin.partitions(accept)

    async def topics(self) -> list[str]:
        """The dead-letter topics on the cluster (logical names)."""
        return sorted(self._logical(t) for t in await self._partitions())

    async def read(
        self, topic: str | None = None, limit: int = 100, deadline_s: float = 20.0
    ) -> list[DeadLetter]:
        """The newest ``limit`` dead letters of one topic (or of all), newest first."""
        consumer = self._require()
        found = await self._partitions(topic)
        tps = [TopicPartition(t, p) for t, parts in found.items() for p in parts]
        if not tps:
            return []
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(starts[tp], ends[tp] - limit))
        letters: list[DeadLetter] = []
        stop_at = time.monotonic() + deadline_s
        while time.monotonic() < stop_at:
            pending = [tp for tp in tps if await consumer.position(tp) < ends[tp]]
            if not pending:
                break
            data = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in data.items():
                letters.extend(
                    DeadLetter(
                        self._logical(tp.topic),
                        tp.partition,
                        r.offset,
                        datetime.fromtimestamp(r.timestamp / 1000, UTC),
                        r.key,
                        r.value,
                        tuple((k, v or b"") for k, v in r.headers or ()),
                    )
                    for r in records
                    if r.offset < ends[tp]
                )
        letters.sort(key=lambda d: d.timestamp, reverse=True)
        return letters[:limit]

    async def get(self, letter_id: str) -> DeadLetter:
        """One dead letter by id; raises `NotFoundError`."""
        topic, partition, offset = parse_id(letter_id)
        consumer = self._require()
        tp = TopicPartition(topics.physical(self._prefix, topic), partition)
        if partition not in (await self._partitions(topic)).get(tp.topic, []):
            raise NotFoundError(f"no dead-letter topic partition {topic}[{partition}]")
        consumer.assign([tp])
        consumer.seek(tp, offset)
        data = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
        for record in data.get(tp, []):
            if record.offset == offset:
                return DeadLetter(
                    topic,
                    partition,
                    offset,
                    datetime.fromtimestamp(record.timestamp / 1000, UTC),
                    record.key,
                    record.value,
                    tuple((k, v or b"") for k, v in record.headers or ()),
                )
        raise NotFoundError(f"no dead letter {letter_id}")

    async def replay(self, letters: Sequence[DeadLetter]) -> list[tuple[str, str]]:
        """Produce each letter's original record to its original topic; (id, topic) pairs."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, enable_idempotence=True, **self._options
        )
        await producer.start()
        done: list[tuple[str, str]] = []
        try:
            for letter in letters:
                target = letter.header(deadletters.TOPIC)
                if not target:
                    raise OpsError(f"dead letter {letter.id} has no {deadletters.TOPIC} header")
                self._check_target(letter, target)
                await producer.send_and_wait(
                    target, letter.value, key=letter.key, headers=letter.original_headers
                )
                done.append((letter.id, target))
        except KafkaError as exc:
            raise KafkaUnavailableError(f"replay failed after {len(done)}: {exc}") from exc
        finally:
            await producer.stop()
        return done

    def _check_target(self, letter: DeadLetter, target: str) -> None:
        """A replay goes back to an input topic of this system only: ``dlq_topic`` is a
        header anyone who can write to a dead-letter topic can set, and a changelog or
        another dead-letter topic is never an input."""
        name = topics.logical(self._prefix, target)
        if name is None or topics.is_changelog(name) or topics.is_dead_letters(name):
            raise OpsError(f"dead letter {letter.id}: will not replay to {target!r:.100}")

    def _require(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            raise RuntimeError("DeadLetters is not open")
        return self._consumer
