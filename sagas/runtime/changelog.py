"""The changelog: one compacted record per saga instance (and per held-message set).

Partition p of ``sagas.<saga>.changelog`` holds the instances of inbox partition p. A
record's key is the saga id (held messages: ``held\\x00`` + saga id); its value is JSON:

* ``{"kind": "instance", "row": {...columns...}, "body": {...instance...}}``
* ``{"kind": "held", "held": {...}}``; a tombstone (no value) for held messages means
  they were applied or dead-lettered.

`catch_up` reads a changelog partition from the offset the store has applied up to the
last stable offset and applies it, so the SQLite store agrees with Kafka before the
partition is processed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from sagas.runtime.store import Changes, Held, Store, StoredInstance

log = logging.getLogger(__name__)

HELD_PREFIX = b"held\x00"


def instance_value(inst: StoredInstance) -> bytes:
    row = asdict(inst)
    body = row.pop("body")
    row.pop("history")
    return json.dumps(
        {"kind": "instance", "row": row, "body": body}, separators=(",", ":")
    ).encode()


def held_key(saga_id: str) -> bytes:
    return HELD_PREFIX + saga_id.encode()


def held_value(held: Held) -> bytes:
    return json.dumps({"kind": "held", "held": asdict(held)}, separators=(",", ":")).encode()


def _history_of(body: dict[str, Any]) -> list[tuple[int, str, dict[str, Any]]]:
    entries = body.get("history") or []
    return [(int(e["seq"]), str(e["at"]), e) for e in entries if isinstance(e, dict)]


def apply_record(changes: Changes, key: bytes | None, value: bytes | None) -> None:
    """Add one changelog record to ``changes`` (later records win)."""
    if key is None:
        return
    if key.startswith(HELD_PREFIX):
        saga_id = key[len(HELD_PREFIX) :].decode()
        changes.held = [h for h in changes.held if h.saga_id != saga_id]
        if value is None:
            changes.released.append(saga_id)
        else:
            held = json.loads(value)["held"]
            changes.held.append(Held(**held))
        return
    if value is None:
        return
    doc = json.loads(value)
    row = doc["row"]
    body = doc["body"]
    changes.instances.append(StoredInstance(**row, body=body, history=_history_of(body)))


class ChangelogReader:
    """Reads changelog partitions to their end; one consumer, reused for every partition.

    Starting a consumer costs a metadata round trip (about a second on a busy machine);
    an engine taking many partitions in one rebalance must not pay it per partition, or
    the rebalance outlasts the session timeout.
    """

    def __init__(
        self, bootstrap_servers: str, client_options: dict[str, Any] | None = None
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._options = client_options or {}
        self._consumer: AIOKafkaConsumer | None = None

    async def _ready(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                isolation_level="read_committed",
                enable_auto_commit=False,
                **self._options,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        """Idempotent."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            await consumer.stop()

    async def catch_up(
        self,
        store: Store,
        saga_name: str,
        topic: str,
        partition: int,
        chunk: int = 2000,
        apply: Callable[[Changes], Coroutine[Any, Any, None]] | None = None,
    ) -> int:
        """Apply ``topic[partition]`` from the store's offset to the end; return records read.

        ``apply`` writes each slice (default: ``store.apply``; the engine passes a
        `StoreWriter`'s, which waits out a full or read-only store).
        """
        write = apply or store.apply
        tp = TopicPartition(topic, partition)
        start = await store.next_changelog_offset(saga_name, partition)
        consumer = await self._ready()
        began = time.monotonic()
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        if end <= start:
            return 0
        consumer.seek(tp, start)
        read = 0
        while (position := await consumer.position(tp)) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000, max_records=chunk)
            changes = Changes(saga_name, partition)
            last = position - 1
            for record in batch.get(tp, []):
                apply_record(changes, record.key, record.value)
                last = record.offset
                read += 1
            # Control records (transaction markers) advance the position, not `last`.
            changes.next_changelog_offset = max(last + 1, await consumer.position(tp))
            if changes.instances or changes.held or changes.released or last >= position:
                await write(changes)
        await write(Changes(saga_name, partition, next_changelog_offset=end))
        log.info(
            "caught up %s[%d]: %d records from offset %d in %.2fs",
            topic,
            partition,
            read,
            start,
            time.monotonic() - began,
        )
        return read
