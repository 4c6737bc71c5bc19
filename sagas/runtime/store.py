"""The SQLite store of one engine process (aiosqlite, WAL).

It holds the materialized state of every saga instance whose inbox partition this
process owns or owned (each body holds the instance's whole history, the audit log),
and per changelog partition the next offset to apply. It is a cache of Kafka: the
changelog topic is the source of truth, and `catch_up` on partition assignment makes
the store agree with it.

Invariant: an instance row and the changelog offset it came from are written in the
same SQLite transaction, so after a crash the store is never ahead of, nor silently
behind, the offset it records.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiosqlite

from sagas.runtime.errors import StoreError, StoreUnwritable

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    saga_name   TEXT    NOT NULL,
    saga_id     TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    started_at  TEXT,
    updated_at  TEXT    NOT NULL,
    ended_at    TEXT,
    next_due    TEXT,
    body        TEXT    NOT NULL,
    PRIMARY KEY (saga_name, saga_id)
);
CREATE INDEX IF NOT EXISTS instances_due
    ON instances (saga_name, partition, next_due) WHERE next_due IS NOT NULL;
CREATE INDEX IF NOT EXISTS instances_state ON instances (saga_name, state);
-- Sagas not ended (start-up's version check, the in-flight gauge): no table scan.
CREATE INDEX IF NOT EXISTS instances_unfinished
    ON instances (saga_name, partition, version) WHERE ended_at IS NULL;
-- A history row per entry duplicated the history every body holds and made catch-up
-- write several rows per saga; `Store.history` reads the body. Older files lose it.
DROP TABLE IF EXISTS history;
CREATE TABLE IF NOT EXISTS held (
    saga_name  TEXT    NOT NULL,
    saga_id    TEXT    NOT NULL,
    partition  INTEGER NOT NULL,
    expires_at TEXT    NOT NULL,
    messages   TEXT    NOT NULL,
    PRIMARY KEY (saga_name, saga_id)
);
CREATE INDEX IF NOT EXISTS held_expiry ON held (saga_name, partition, expires_at);
CREATE TABLE IF NOT EXISTS changelog_offsets (
    saga_name   TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (saga_name, partition)
);
"""

# Primary result codes of a write refused for now (the same write can succeed later):
# SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_FULL.
_UNWRITABLE_FOR_NOW = {5, 6, 8, 10, 13}


def _write_error(path: Path, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF in _UNWRITABLE_FOR_NOW:
        return StoreUnwritable(f"the saga store {path} refuses writes for now: {exc}")
    return StoreError(f"cannot write to the saga store {path}: {exc}")


INSTANCE_UPSERT = (
    "INSERT INTO instances (saga_name, saga_id, partition, version, state, started_at,"
    " updated_at, ended_at, next_due, body) VALUES (?,?,?,?,?,?,?,?,?,?)"
    " ON CONFLICT (saga_name, saga_id) DO UPDATE SET partition = excluded.partition,"
    " version = excluded.version, state = excluded.state,"
    " started_at = excluded.started_at, updated_at = excluded.updated_at,"
    " ended_at = excluded.ended_at, next_due = excluded.next_due, body = excluded.body"
)


def row(inst: StoredInstance) -> tuple[Any, ...]:
    """The `instances` row (`INSTANCE_UPSERT` parameters) `Store.apply` writes for ``inst``."""
    return (
        inst.saga_name,
        inst.saga_id,
        inst.partition,
        inst.version,
        inst.state,
        inst.started_at,
        inst.updated_at,
        inst.ended_at,
        inst.next_due,
        inst.body_text(),
    )


@dataclass(frozen=True)
class StoredInstance:
    """One row of `instances`; its body is the whole instance, its history included.

    The body is held decoded (``body``), as text (``body_json``), or both; at least one.
    """

    saga_name: str
    saga_id: str
    partition: int
    version: int
    state: str
    updated_at: str
    body: dict[str, Any] | None
    """The body decoded, or None when only its text is kept: the engine encodes each
    changed instance once and keeps the text alone (`batch.stored_row`)."""
    started_at: str | None = None
    ended_at: str | None = None
    next_due: str | None = None
    body_json: str | None = field(default=None, compare=False, repr=False)
    """The body as the compact JSON text to store, when at hand: catch-up copies it
    from the changelog record instead of encoding the body again."""

    def __post_init__(self) -> None:
        if self.body is None and self.body_json is None:
            raise ValueError(f"stored instance {self.saga_id!r} has no body")

    def body_text(self) -> str:
        """The body as stored: compact JSON."""
        if self.body_json is not None:
            return self.body_json
        return json.dumps(self.body, separators=(",", ":"))

    def body_dict(self) -> dict[str, Any]:
        """The body decoded (from its text when only the text is kept)."""
        if self.body is not None:
            return self.body
        decoded: dict[str, Any] = json.loads(self.body_text())
        return decoded


@dataclass(frozen=True)
class Held:
    """Messages for a saga that has not started yet, kept until ``expires_at``."""

    saga_id: str
    partition: int
    expires_at: str
    messages: Sequence[dict[str, Any]]


@dataclass
class Changes:
    """Everything one committed batch (or one changelog slice) changes, for one saga."""

    saga_name: str
    partition: int
    instances: list[StoredInstance] = field(default_factory=list)
    instance_rows: list[tuple[Any, ...]] = field(default_factory=list)
    """More `instances` rows, as `INSTANCE_UPSERT` parameters, written after
    ``instances``: catch-up copies them out of changelog records without decoding the
    bodies (`changelog.instance_row`)."""
    held: list[Held] = field(default_factory=list)
    released: list[str] = field(default_factory=list)
    """Saga ids whose held messages were applied or dead-lettered."""
    next_changelog_offset: int | None = None


class Store:
    """Async access to the engine's SQLite file. Use ``async with Store.open(path)``."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path
        # One connection: partitions commit concurrently, and two BEGINs on it would
        # collide (or one's rollback undo the other's rows). Writes take turns.
        self._writing = asyncio.Lock()

    @classmethod
    async def open(cls, path: Path) -> Store:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(path)
            # WAL: readers (CLI, dashboard) never block the engine's writer.
            await db.execute("PRAGMA journal_mode=WAL")
            # NORMAL is safe with WAL against corruption; a power cut may lose the last
            # commits, which catch-up from the changelog restores.
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(_SCHEMA)
            await db.commit()
        except aiosqlite.Error as exc:
            raise StoreError(f"cannot open the saga store at {path}: {exc}") from exc
        return cls(db, path)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writes ---------------------------------------------------------------------

    async def apply(self, changes: Changes) -> None:
        """Write a batch's instances, held messages and changelog offset, atomically."""
        async with self._writing:
            await self._apply(changes)

    async def _apply(self, changes: Changes) -> None:
        try:
            await self._db.execute("BEGIN")
            # One executemany per table: a statement per row costs a hop to aiosqlite's
            # thread each, which made catch-up of 100k sagas take minutes.
            rows = [row(i) for i in changes.instances] + changes.instance_rows
            if rows:
                await self._db.executemany(INSTANCE_UPSERT, rows)
            if changes.held:
                await self._db.executemany(
                    "INSERT OR REPLACE INTO held (saga_name, saga_id, partition, expires_at,"
                    " messages) VALUES (?,?,?,?,?)",
                    [
                        (
                            changes.saga_name,
                            held.saga_id,
                            held.partition,
                            held.expires_at,
                            json.dumps(list(held.messages)),
                        )
                        for held in changes.held
                    ],
                )
            if changes.released:
                await self._db.executemany(
                    "DELETE FROM held WHERE saga_name = ? AND saga_id = ?",
                    [(changes.saga_name, saga_id) for saga_id in changes.released],
                )
            if changes.next_changelog_offset is not None:
                await self._db.execute(
                    "INSERT INTO changelog_offsets (saga_name, partition, next_offset) "
                    "VALUES (?, ?, ?) ON CONFLICT (saga_name, partition) "
                    "DO UPDATE SET next_offset = excluded.next_offset",
                    (changes.saga_name, changes.partition, changes.next_changelog_offset),
                )
            await self._db.commit()
        except aiosqlite.Error as exc:
            await self._db.rollback()
            raise _write_error(self.path, exc) from exc

    # -- reads ----------------------------------------------------------------------

    async def next_changelog_offset(self, saga_name: str, partition: int) -> int:
        """The first changelog offset not yet applied (0 for an empty store)."""
        async with self._db.execute(
            "SELECT next_offset FROM changelog_offsets WHERE saga_name = ? AND partition = ?",
            (saga_name, partition),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def get(self, saga_name: str, saga_id: str) -> dict[str, Any] | None:
        async with self._db.execute(
            "SELECT body FROM instances WHERE saga_name = ? AND saga_id = ?",
            (saga_name, saga_id),
        ) as cur:
            row = await cur.fetchone()
        return json.loads(row[0]) if row else None

    async def get_many(self, saga_name: str, saga_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Bodies of the given instances that exist, by id (one query per 500 ids)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(saga_ids), 500):
            chunk = saga_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                f"SELECT saga_id, body FROM instances WHERE saga_name = ? AND saga_id IN ({marks})",
                (saga_name, *chunk),
            ) as cur:
                async for saga_id, body in cur:
                    found[saga_id] = json.loads(body)
        return found

    async def due(
        self, saga_name: str, partition: int, until: str, limit: int = 500
    ) -> list[dict[str, Any]]:
        """Bodies of instances on ``partition`` with a timer due at or before ``until``."""
        async with self._db.execute(
            "SELECT body FROM instances WHERE saga_name = ? AND partition = ?"
            " AND next_due IS NOT NULL AND next_due <= ? ORDER BY next_due LIMIT ?",
            (saga_name, partition, until, limit),
        ) as cur:
            return [json.loads(row[0]) async for row in cur]

    async def earliest_due(self, saga_name: str, partition: int) -> str | None:
        async with self._db.execute(
            "SELECT MIN(next_due) FROM instances WHERE saga_name = ? AND partition = ?"
            " AND next_due IS NOT NULL",
            (saga_name, partition),
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row and row[0] is not None else None

    async def earliest_held_expiry(self, saga_name: str, partition: int) -> str | None:
        async with self._db.execute(
            "SELECT MIN(expires_at) FROM held WHERE saga_name = ? AND partition = ?",
            (saga_name, partition),
        ) as cur:
            row = await cur.fetchone()
        return str(row[0]) if row and row[0] is not None else None

    async def held_ids(self, saga_name: str, saga_ids: Sequence[str]) -> set[str]:
        """Which of the given sagas have held messages (one query per 500 ids)."""
        found: set[str] = set()
        for start in range(0, len(saga_ids), 500):
            chunk = saga_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            async with self._db.execute(
                f"SELECT saga_id FROM held WHERE saga_name = ? AND saga_id IN ({marks})",
                (saga_name, *chunk),
            ) as cur:
                found.update([row[0] async for row in cur])
        return found

    async def held(self, saga_name: str, saga_id: str) -> Held | None:
        async with self._db.execute(
            "SELECT partition, expires_at, messages FROM held WHERE saga_name = ? AND saga_id = ?",
            (saga_name, saga_id),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return Held(saga_id, int(row[0]), str(row[1]), json.loads(row[2]))

    async def expired_held(
        self, saga_name: str, partition: int, now: str, limit: int = 500
    ) -> list[Held]:
        async with self._db.execute(
            "SELECT saga_id, partition, expires_at, messages FROM held WHERE saga_name = ?"
            " AND partition = ? AND expires_at <= ? ORDER BY expires_at LIMIT ?",
            (saga_name, partition, now, limit),
        ) as cur:
            return [Held(a, int(b), str(c), json.loads(d)) async for a, b, c, d in cur]

    async def unfinished_count(self, saga_name: str, partition: int) -> int:
        """Instances of ``partition`` not ended (the partial index on unfinished sagas)."""
        async with self._db.execute(
            "SELECT COUNT(*) FROM instances WHERE saga_name = ? AND partition = ?"
            " AND ended_at IS NULL",
            (saga_name, partition),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def unfinished_versions(self, saga_name: str) -> set[int]:
        """Definition versions that instances not yet ended still run on."""
        async with self._db.execute(
            "SELECT DISTINCT version FROM instances WHERE saga_name = ? AND ended_at IS NULL",
            (saga_name,),
        ) as cur:
            return {int(v) async for (v,) in cur}

    async def history(self, saga_name: str, saga_id: str) -> list[dict[str, Any]]:
        """The instance's history entries (from its body), by ``seq``; [] if unknown."""
        body = await self.get(saga_name, saga_id)
        entries = body.get("history") if body else None
        if not isinstance(entries, list):
            return []
        return sorted((e for e in entries if isinstance(e, dict)), key=lambda e: int(e["seq"]))

    async def counts_by_state(self, saga_name: str) -> dict[str, int]:
        async with self._db.execute(
            "SELECT state, COUNT(*) FROM instances WHERE saga_name = ? GROUP BY state",
            (saga_name,),
        ) as cur:
            return {state: int(n) async for state, n in cur}

    async def instances(
        self, saga_name: str, states: Sequence[str] = ()
    ) -> AsyncIterator[dict[str, Any]]:
        query = "SELECT body FROM instances WHERE saga_name = ?"
        params: list[Any] = [saga_name]
        if states:
            query += f" AND state IN ({','.join('?' * len(states))})"
            params.extend(states)
        async with self._db.execute(query, params) as cur:
            async for (body,) in cur:
                yield json.loads(body)
