"""The changelog: one compacted record per saga instance (and per held-message set).

Partition p of ``sagas.<saga>.changelog`` holds the instances of inbox partition p. A
record's key is the saga id (held messages: ``held\\x00`` + saga id); its value is JSON:

* ``{"kind": "instance", "row": {...columns...}, "body": {...instance...}}``
* ``{"kind": "held", "held": {...}}``; a tombstone (no value) for held messages means
  they were applied or dead-lettered.

Any other value (not UTF-8 JSON, another ``kind``, members missing or of the wrong
type) raises `CorruptChangelog`. The changelog is the engine's state: such a record is
never skipped, so catch-up, and with it the taking of the unit, stops there.

`catch_up` reads a changelog partition (through the transport's `PartitionReader`) from
the offset the store has applied up to the last stable offset and applies it, so the
SQLite store agrees with Kafka before the partition is processed.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict
from typing import Any

import orjson

from sagas.runtime.errors import CorruptChangelog
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


_DECODE_ERRORS = (ValueError, KeyError, TypeError, RecursionError)
"""What decoding a malformed record raises: JSONDecodeError and UnicodeDecodeError are
ValueErrors, a missing member a KeyError, a member of the wrong shape a TypeError, JSON
nested deeper than the stdlib decoder recurses a RecursionError. Caught once around
the decoding of a slice (or of one record) and turned into `CorruptChangelog`, rather
than checked field by field."""

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def _json_type(x: object) -> str:
    return _JSON_TYPES.get(type(x), type(x).__name__)


def _corrupt(exc: BaseException, key: bytes | None) -> CorruptChangelog:
    """The `CorruptChangelog` for what decoding the record of ``key`` raised."""
    if isinstance(exc, UnicodeDecodeError):
        why = f"not UTF-8 ({exc.reason} at byte {exc.start})"
    elif isinstance(exc, json.JSONDecodeError):  # orjson's is one too
        why = f"not JSON ({exc})"
    elif isinstance(exc, RecursionError):
        why = "JSON nested too deeply to decode"
    elif isinstance(exc, KeyError):
        why = f"no {exc.args[0]!r} member"
    else:
        why = str(exc)
    return CorruptChangelog(why[:300], key=key)


def _document(value: bytes, kind: str) -> dict[str, Any]:
    """The record decoded whole, refused unless it is a JSON object of ``kind``."""
    doc = _loads(value)
    if not isinstance(doc, dict):
        raise TypeError(f"the value is {_json_type(doc)}, not an object")
    if doc.get("kind") != kind:
        raise ValueError(f"kind {doc.get('kind')!r} where {kind!r} was expected")
    return doc


def _instance(value: bytes) -> StoredInstance:
    doc = _document(value, "instance")
    row, body = doc["row"], doc["body"]
    if not isinstance(row, dict):
        raise TypeError(f"row is {_json_type(row)}, not an object")
    if not isinstance(body, dict):  # null too: an instance always has a body
        raise TypeError(f"body is {_json_type(body)}, not an object")
    return StoredInstance(**row, body=body, body_json=_body_text(value, doc))


def instance_of(value: bytes) -> StoredInstance:
    """The store row of one instance record (decoded once; the body's text is reused).

    Raises:
        CorruptChangelog: the value is not an instance record.
    """
    try:
        inst = _instance(value)
        _check_row(row(inst))
    except _DECODE_ERRORS as exc:
        raise _corrupt(exc, None) from exc
    return inst


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


_COLUMNS = (
    "saga_name",
    "saga_id",
    "partition",
    "version",
    "state",
    "started_at",
    "updated_at",
    "ended_at",
    "next_due",
    "body",
)
"""The `instances` columns, in `store.row`'s order."""

_ROW_KEYS = frozenset(_COLUMNS[:-1])

_TEXT, _INTEGER, _OPTIONAL = (str,), (int,), (str, type(None))
_COLUMN_TYPES = (
    _TEXT,
    _TEXT,
    _INTEGER,
    _INTEGER,
    _TEXT,
    _OPTIONAL,
    _TEXT,
    _OPTIONAL,
    _OPTIONAL,
    _TEXT,
)
_ROW_TYPES = frozenset(itertools.product(*_COLUMN_TYPES))
"""Every tuple of the types a `store.row` may hold (text, integers, and NULL where the
column allows it; not a boolean): one set lookup checks a whole row."""


def _check_row(found: tuple[Any, ...]) -> None:
    if tuple(map(type, found)) not in _ROW_TYPES:
        _refuse_row(found)


def _refuse_row(found: tuple[Any, ...]) -> None:
    for name, v, types in zip(_COLUMNS, found, _COLUMN_TYPES, strict=True):
        if type(v) not in types:
            raise TypeError(f"row column {name!r} is {_json_type(v)}")


def _instance_row(value: bytes) -> tuple[Any, ...]:
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
            found = row(StoredInstance(**head["row"], body=None, body_json=body))
            _check_row(found)
            return found
    found = row(_instance(value))
    _check_row(found)
    return found


def instance_row(value: bytes) -> tuple[Any, ...]:
    """The `instances` row (`store.INSTANCE_UPSERT` parameters) of one instance record.

    Catch-up's fast path: only the record's head (``kind`` and ``row``, a few hundred
    bytes) is decoded; the body's text is copied as is, never decoded (it is most of
    the record). Inside a JSON string every quote is escaped, so ``,"body":`` occurs
    only between members; if the text before its first occurrence, closed by ``}``, is
    exactly ``{"kind":"instance","row":{...}}``, that occurrence is the top-level body
    member. A record in any other shape (not written by `instance_value`) is decoded
    whole, as `instance_of` does. Either way the row's columns are checked to be text,
    integers or NULL as the table allows.

    Raises:
        CorruptChangelog: the value is not an instance record.
    """
    try:
        return _instance_row(value)
    except _DECODE_ERRORS as exc:
        raise _corrupt(exc, None) from exc


def _held(saga_id: str, value: bytes) -> Held:
    doc = _document(value, "held")
    fields = doc["held"]
    if not isinstance(fields, dict):
        raise TypeError(f"held is {_json_type(fields)}, not an object")
    held = Held(**fields)
    if held.saga_id != saga_id:
        raise ValueError(f"held messages of saga {held.saga_id!r} under the key of {saga_id!r}")
    if type(held.partition) is not int or type(held.expires_at) is not str:
        raise TypeError("held partition is not an integer or expires_at not a string")
    if not isinstance(held.messages, list):
        raise TypeError(f"held messages are {_json_type(held.messages)}, not an array")
    return held


def changes_of(
    saga_name: str, partition: int, records: Sequence[tuple[bytes | None, bytes | None]]
) -> Changes:
    """The store changes of a slice of changelog (key, value) records, in offset order.

    Only the last record of each key is decoded: an instance record holds the whole
    instance (its history included), a held record the whole set (or, a tombstone, its
    release); of an instance record only the indexed columns are (`instance_row`).
    Instance tombstones are never written by the engine and are ignored, as
    `apply_record` does.

    Raises:
        CorruptChangelog: a record to decode is malformed (its ``key`` is set; `catch_up`
            adds where it was read). Nothing of the slice is to be written then.
    """
    latest: dict[bytes, bytes | None] = {}
    for key, value in records:
        if key is None or (value is None and not key.startswith(HELD_PREFIX)):
            continue
        latest.pop(key, None)  # keep offset order among the survivors
        latest[key] = value
    changes = Changes(saga_name, partition)
    key = None
    try:
        for key, value in latest.items():
            if key.startswith(HELD_PREFIX):
                saga_id = key[len(HELD_PREFIX) :].decode()
                if value is None:
                    changes.released.append(saga_id)
                else:
                    changes.held.append(_held(saga_id, value))
            elif value is not None:
                changes.instance_rows.append(_instance_row(value))
    except _DECODE_ERRORS as exc:
        raise _corrupt(exc, key) from exc
    return changes


def apply_record(changes: Changes, key: bytes | None, value: bytes | None) -> None:
    """Add one changelog record to ``changes`` (the last record of a key wins: held
    messages after their tombstone are held, a tombstone after them releases them).

    Raises:
        CorruptChangelog: the record is malformed; ``changes`` is left as it was.
    """
    if key is None:
        return
    try:
        if key.startswith(HELD_PREFIX):
            saga_id = key[len(HELD_PREFIX) :].decode()
            held = None if value is None else _held(saga_id, value)
            changes.held = [h for h in changes.held if h.saga_id != saga_id]
            if saga_id in changes.released:  # `Store.apply` deletes after it inserts
                changes.released.remove(saga_id)
            if held is None:
                changes.released.append(saga_id)
            else:
                changes.held.append(held)
            return
        if value is None:
            return
        inst = _instance(value)
        _check_row(row(inst))
    except _DECODE_ERRORS as exc:
        raise _corrupt(exc, key) from exc
    changes.instances.append(inst)


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

    Raises:
        CorruptChangelog: a record does not decode, naming its topic, partition and
            offset. The slices before its slice are written (the store's offset is that
            slice's start); the record is never skipped (the changelog is the state),
            so catching up again stops at it again.
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
            try:
                changes = changes_of(saga_name, tp.partition, [(r.key, r.value) for r in batch])
            except CorruptChangelog as exc:
                # Only the key's last record in the slice was decoded: that one is bad.
                at = next((r.offset for r in reversed(batch) if r.key == exc.key), None)
                exc.located(tp.topic, tp.partition, at)
                raise
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
