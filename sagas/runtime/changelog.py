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

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from sagas.runtime.store import Changes, Held, Store, StoredInstance, row

log = logging.getLogger(__name__)

HELD_PREFIX = b"held\x00"

FETCH_BYTES = 16 << 20
"""Most bytes one catch-up fetch returns (bounds its memory too)."""

CLOSE_TIMEOUT_S = 5.0
"""Longest wait for the reader's consumer to stop (see `ChangelogReader.close`)."""

FETCH_WAIT_MS = 20
"""How long the broker holds a catch-up fetch that has nothing to return yet."""


_BODY = b',"body":'


def instance_value(inst: StoredInstance) -> bytes:
    """``{"kind":"instance","row":{...},"body":{...}}``, compact; the body comes last.

    The body's text is exactly what the store holds (`StoredInstance.body_text`), so
    catch-up can copy it out of the record instead of encoding it again.
    """
    row = {
        "saga_name": inst.saga_name,
        "saga_id": inst.saga_id,
        "partition": inst.partition,
        "version": inst.version,
        "state": inst.state,
        "updated_at": inst.updated_at,
        "started_at": inst.started_at,
        "ended_at": inst.ended_at,
        "next_due": inst.next_due,
    }
    head = json.dumps({"kind": "instance", "row": row}, separators=(",", ":"))
    return f'{head[:-1]},"body":{inst.body_text()}}}'.encode()


def held_key(saga_id: str) -> bytes:
    return HELD_PREFIX + saga_id.encode()


def held_value(held: Held) -> bytes:
    return json.dumps({"kind": "held", "held": asdict(held)}, separators=(",", ":")).encode()


def _history_of(body: dict[str, Any]) -> list[tuple[int, str, dict[str, Any]]]:
    entries = body.get("history") or []
    return [(int(e["seq"]), str(e["at"]), e) for e in entries if isinstance(e, dict)]


def _loads(value: bytes) -> Any:
    """orjson where it can; the stdlib for what orjson refuses (NaN, huge integers)."""
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return json.loads(value)


def instance_of(value: bytes) -> StoredInstance:
    """The store row of one instance record (decoded once; the body's text is reused)."""
    doc = _loads(value)
    row = doc["row"]
    body = doc["body"]
    return StoredInstance(
        **row, body=body, history=_history_of(body), body_json=_body_text(value, doc)
    )


def _body_text(value: bytes, doc: dict[str, Any]) -> str | None:
    """The body's JSON text inside ``value`` when it was written by `instance_value`.

    Inside a JSON string every quote is escaped, so ``,"body":`` occurs only between
    members; with the members in `instance_value`'s order and no ``body`` in ``row``,
    the first occurrence starts the body and the body runs to the closing brace.
    """
    if list(doc) != ["kind", "row", "body"] or "body" in doc["row"] or value[-1:] != b"}":
        return None
    cut = value.find(_BODY)
    return value[cut + len(_BODY) : -1].decode() if cut > 0 else None


_ROW_KEYS = frozenset(
    (
        "saga_name",
        "saga_id",
        "partition",
        "version",
        "state",
        "updated_at",
        "started_at",
        "ended_at",
        "next_due",
    )
)


def instance_row(value: bytes) -> tuple[Any, ...]:
    """The `instances` row (`store.INSTANCE_UPSERT` parameters) of one instance record.

    Catch-up's fast path: only the record's head (``kind`` and ``row``, a few hundred
    bytes) is decoded; the body's text is copied as is, never decoded (it is most of
    the record). Inside a JSON string every quote is escaped, so ``,"body":`` occurs
    only between members; if the text before its first occurrence, closed by ``}``, is
    exactly ``{"kind":"instance","row":{...}}``, that occurrence is the top-level body
    member. A record in any other shape (not written by `instance_value`) is decoded
    whole, as `instance_of` does.
    """
    cut = value.find(_BODY)
    if cut > 0 and value[-1:] == b"}" and value[cut + len(_BODY) : cut + len(_BODY) + 1] == b"{":
        try:
            head = orjson.loads(value[:cut] + b"}")
        except orjson.JSONDecodeError:
            head = None
        if (
            isinstance(head, dict)
            and list(head) == ["kind", "row"]
            and head["kind"] == "instance"
            and isinstance(head["row"], dict)
            and head["row"].keys() == _ROW_KEYS
        ):
            body = value[cut + len(_BODY) : -1].decode()
            return row(StoredInstance(**head["row"], body={}, body_json=body))
    return row(instance_of(value))


def changes_of(
    saga_name: str, partition: int, records: Sequence[tuple[bytes | None, bytes | None]]
) -> Changes:
    """The store changes of a slice of changelog (key, value) records, in offset order.

    Only the last record of each key is decoded: an instance record holds the whole
    instance (its history included), a held record the whole set; of an instance record
    only the indexed columns are (`instance_row`). Instance tombstones are never written
    by the engine and are ignored, as `apply_record` does.
    """
    latest: dict[bytes, bytes | None] = {}
    for key, value in records:
        if key is None or (value is None and not key.startswith(HELD_PREFIX)):
            continue
        latest.pop(key, None)  # keep offset order among the survivors
        latest[key] = value
    changes = Changes(saga_name, partition)
    for key, value in latest.items():
        if key.startswith(HELD_PREFIX):
            saga_id = key[len(HELD_PREFIX) :].decode()
            if value is None:
                changes.released.append(saga_id)
            else:
                changes.held.append(Held(**json.loads(value)["held"]))
        elif value is not None:
            changes.instance_rows.append(instance_row(value))
    return changes


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
        # One consumer, assigned one partition at a time: concurrent catch-ups take turns.
        self._turn = asyncio.Lock()

    async def _ready(self) -> AIOKafkaConsumer:
        if self._consumer is None:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                isolation_level="read_committed",
                enable_auto_commit=False,
                # A changelog record is a whole instance (a few KiB): the default 1 MiB
                # per fetch made catch-up wait on hundreds of round trips.
                max_partition_fetch_bytes=FETCH_BYTES,
                fetch_max_bytes=FETCH_BYTES,
                # A fetch with nothing to return waits this long on the broker, and the
                # offset requests of the next catch-up queue behind it on the connection
                # (the default 500 ms made taking 12 partitions cost 6 s).
                fetch_max_wait_ms=FETCH_WAIT_MS,
                **self._options,
            )
            await consumer.start()
            self._consumer = consumer
        return self._consumer

    async def close(self) -> None:
        """Idempotent; bounded by ``CLOSE_TIMEOUT_S``.

        Seen here: a stop right after a catch-up unassigned the reader never returned.
        aiokafka's fetch routine, still cancelling the fetches of the old assignment,
        swallowed its own cancellation and went on waiting for a new assignment. The
        process is shutting down then; waiting for ever would keep it from ending.
        """
        consumer, self._consumer = self._consumer, None
        if consumer is None:
            return
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await consumer.stop()
        except TimeoutError:
            log.warning(
                "the changelog reader did not stop within %.0fs; left behind", CLOSE_TIMEOUT_S
            )

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
        async with self._turn:
            return await self._catch_up(store, saga_name, topic, partition, chunk, apply)

    async def _catch_up(
        self,
        store: Store,
        saga_name: str,
        topic: str,
        partition: int,
        chunk: int,
        apply: Callable[[Changes], Coroutine[Any, Any, None]] | None,
    ) -> int:
        write = apply or store.apply
        tp = TopicPartition(topic, partition)
        start = await store.next_changelog_offset(saga_name, partition)
        consumer = await self._ready()
        began = time.monotonic()
        consumer.assign([tp])
        try:
            end = (await consumer.end_offsets([tp]))[tp]
            if end <= start:
                return 0
            consumer.seek(tp, start)
            read = await _apply_slices(consumer, tp, end, chunk, saga_name, write)
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
        finally:
            # Unassigned, the reader fetches nothing more: it keeps no buffer of the
            # records this engine goes on writing to the changelog.
            consumer.unsubscribe()


async def _apply_slices(
    consumer: AIOKafkaConsumer,
    tp: TopicPartition,
    end: int,
    chunk: int,
    saga_name: str,
    write: Callable[[Changes], Coroutine[Any, Any, None]],
) -> int:
    """Fetch ``tp`` up to ``end`` and write it slice by slice; return the records read.

    A slice is written while the next one is fetched and decoded (SQLite works in
    aiosqlite's thread); slices are still written one after the other, in order.
    """
    read = 0
    writing: asyncio.Task[None] | None = None
    try:
        while (position := await consumer.position(tp)) < end:
            fetched = await consumer.getmany(tp, timeout_ms=1000, max_records=chunk)
            batch = fetched.get(tp, [])
            # One store transaction per slice; only the last record of a key decoded.
            changes = changes_of(saga_name, tp.partition, [(r.key, r.value) for r in batch])
            last = batch[-1].offset if batch else position - 1
            read += len(batch)
            # Control records (transaction markers) advance the position, not `last`.
            changes.next_changelog_offset = max(last + 1, await consumer.position(tp))
            if changes.instance_rows or changes.held or changes.released or last >= position:
                if writing is not None:
                    await writing
                writing = asyncio.create_task(write(changes))
        if writing is not None:
            await writing
            writing = None
    finally:
        if writing is not None:  # failed or cancelled meanwhile: let the write end
            await asyncio.wait([writing])
    return read
