"""The changelog: one compacted record per saga instance (and per held-message set).

Partition p of ``sagas.<saga>.changelog`` holds the instances of inbox partition p. A
record's key is the saga id (held messages: ``held\\x00`` + saga id); its value is JSON:

* ``{"kind": "instance", "row": {...columns...}, "body": {...instance...}}``
* ``{"kind": "held", "held": {...}}``; a tombstone (no value) for held messages means
  they were applied or dead-lettered.

`catch_up` reads a changelog partition (through the transport's `PartitionReader`) from
the offset the store has applied up to the last stable offset and applies it, so the
SQLite store agrees with Kafka before the partition is processed.
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

from sagas.runtime.store import Changes, Held, Store, StoredInstance, row
from sagas.runtime.transport.base import PartitionReader
from sagas.runtime.transport.records import TP

log = logging.getLogger(__name__)

HELD_PREFIX = b"held\x00"


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
    return StoredInstance(**row, body=body, body_json=_body_text(value, doc))


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
            return row(StoredInstance(**head["row"], body=None, body_json=body))
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
    changes.instances.append(StoredInstance(**row, body=body))


async def catch_up(
    reader: PartitionReader,
    store: Store,
    saga_name: str,
    tp: TP,
    apply: Callable[[Changes], Coroutine[Any, Any, None]] | None = None,
    chunk: int = 2000,
) -> int:
    """Apply changelog partition ``tp`` from the store's offset to its end; return the
    records read.

    ``apply`` writes each slice (default: ``store.apply``; the engine passes a
    `StoreWriter`'s, which waits out a full or read-only store). One store transaction
    per slice, only the last record of a key decoded; a slice is written while the next
    is fetched and decoded (SQLite works in aiosqlite's thread), in order.
    """
    write = apply or store.apply
    start = await store.next_changelog_offset(saga_name, tp.partition)
    began = time.monotonic()
    end = await reader.end_offset(tp)
    if end <= start:
        return 0
    read = 0
    writing: asyncio.Task[None] | None = None
    try:
        async for batch, position in reader.read(tp, start, end, chunk):
            changes = changes_of(saga_name, tp.partition, [(r.key, r.value) for r in batch])
            read += len(batch)
            changes.next_changelog_offset = position
            if writing is not None:
                await writing
            writing = asyncio.create_task(write(changes))
        if writing is not None:
            await writing
            writing = None
    finally:
        if writing is not None:  # failed or cancelled meanwhile: let the write end
            await asyncio.wait([writing])
    await write(Changes(saga_name, tp.partition, next_changelog_offset=end))
    log.info(
        "caught up %s: %d records from offset %d in %.2fs",
        tp,
        read,
        start,
        time.monotonic() - began,
    )
    return read
