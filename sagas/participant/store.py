"""A participant's own SQLite store: its business tables and the record of what it did.

Invariant: a command's side effects and the row saying it was processed (with the
reply to send for it) are written in ONE SQLite transaction. A duplicate delivery finds
the row and gets the stored reply again; a crash before the commit leaves neither.

Invariant: a compensation and the tombstones of the commands it undoes that were not
processed yet are written in ONE transaction too; a command with a tombstone is
refused when it comes, and applies nothing.

Where the statements run: aiosqlite runs every call on its connection's own thread, a
thread hop (a queue, a future, a wake-up of the event loop) that costs far more CPU than
the statement. Inside `Store.transaction` the statements run on the event loop's thread
instead, directly: after ``BEGIN IMMEDIATE`` this connection holds SQLite's write lock,
so no statement of the transaction waits for another connection. What may wait still
goes to the connection's thread: ``COMMIT`` (its fsync), a ``BEGIN IMMEDIATE`` that
finds another connection writing (it is tried on the loop's thread first, without
waiting: the service is normally its file's only writer), and every statement outside
a transaction.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite

FRAMEWORK_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    message_id   TEXT PRIMARY KEY,     -- ce_id of the command or event
    message_type TEXT NOT NULL,
    processed_at TEXT NOT NULL,
    reply_topic  TEXT,                 -- NULL for events (no reply)
    reply_key    BLOB,
    reply_headers TEXT,                -- JSON [[name, hex value], ...]
    reply_value  BLOB
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tombstones (
    command_id     TEXT PRIMARY KEY,   -- a command compensated before it arrived
    compensated_by TEXT NOT NULL,      -- ce_id of that compensation
    recorded_at    TEXT NOT NULL
);
"""


@dataclass(frozen=True, kw_only=True)
class Outbound:
    """A Kafka record to produce: a reply, a dead letter or a domain event."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


BUSY_TIMEOUT_MS = 5000
"""How long a statement waits for another connection's lock before it fails."""


class _Connection(aiosqlite.Connection):
    """An aiosqlite connection that runs calls on the caller's thread while ``inline``.

    aiosqlite funnels every call (the connection's and its cursors') through
    ``_execute``; while ``inline`` is set (`Store.transaction`, between ``BEGIN
    IMMEDIATE`` and ``COMMIT``) the call runs at once instead of on the connection's
    thread. The sqlite3 connection is opened with ``check_same_thread=False``: SQLite
    is built serialized here (``sqlite3.threadsafety == 3``), so a read that another
    coroutine sent to the thread meanwhile is safe too.
    """

    inline = False

    async def begin_immediate(self) -> None:
        """``BEGIN IMMEDIATE`` on the caller's thread when the write lock is free; else on
        the connection's thread, waiting for it up to `BUSY_TIMEOUT`."""
        self.inline = True
        try:
            await self.execute("PRAGMA busy_timeout=0")
            try:
                await self.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode != sqlite3.SQLITE_BUSY:
                    raise
            finally:
                await self.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        finally:
            self.inline = False
        await self.execute("BEGIN IMMEDIATE")

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self.inline:
            # aiosqlite leaves its own `_execute` unannotated
            return await super()._execute(fn, *args, **kwargs)  # type: ignore[no-untyped-call]
        if not self._running or self._connection is None:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


async def _connect(path: Path) -> _Connection:
    connector = partial(sqlite3.connect, path, isolation_level=None, check_same_thread=False)
    db = _Connection(connector, 64)
    await db  # starts its thread and connects there
    return db


class Store:
    """The SQLite file of one service (WAL, one connection, one writer at a time).

    Use `Store.open`, or ``async with Store(path)``.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: _Connection | None = None
        # One connection serves the agent and the web routes: transactions must not
        # interleave on it, so each holds this lock from BEGIN to COMMIT.
        self._lock = asyncio.Lock()

    async def open(self, schema: str = "") -> Store:
        """Open (creating the file and the tables when missing); returns self."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = await _connect(self.path)
        try:
            await db.execute("PRAGMA journal_mode=WAL")
            # FULL: a processed row must survive a power cut once its reply was sent.
            await db.execute("PRAGMA synchronous=FULL")
            await db.execute("PRAGMA foreign_keys=ON")
            await db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            await db.executescript(FRAMEWORK_SCHEMA + schema)
        except BaseException:
            await db.close()
            raise
        self._db = db
        return self

    async def close(self) -> None:
        """Close the connection (idempotent)."""
        db, self._db = self._db, None
        if db is not None:
            await db.close()

    async def __aenter__(self) -> Store:
        return self if self._db is not None else await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection (for reads outside a transaction)."""
        if self._db is None:
            raise RuntimeError(f"store {self.path} is not open")
        return self._db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back when the block raises.

        Statements inside run on the event loop's thread (see the module docstring);
        ``COMMIT``, ``ROLLBACK`` and a ``BEGIN`` that has to wait for another writer on
        the connection's thread.
        """
        async with self._lock:
            db = self._db
            if db is None:
                raise RuntimeError(f"store {self.path} is not open")
            await db.begin_immediate()
            db.inline = True
            try:
                yield db
            except BaseException:
                db.inline = False
                await db.rollback()
                raise
            finally:
                db.inline = False
            await db.commit()

    async def processed_count(self) -> int:
        """How many commands and events were processed."""
        async with self.db.execute("SELECT COUNT(*) FROM processed") as cursor:
            row = await cursor.fetchone()
        return int(row[0]) if row else 0


async def find_processed(db: aiosqlite.Connection, message_id: str) -> Outbound | bool | None:
    """The stored reply of ``message_id``; ``True`` when processed without a reply;
    ``None`` when never processed."""
    async with db.execute(
        "SELECT reply_topic, reply_key, reply_headers, reply_value FROM processed "
        "WHERE message_id = ?",
        (message_id,),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        return None
    topic, key, headers, value = row
    if topic is None:
        return True
    pairs = [(str(name), bytes.fromhex(hexed)) for name, hexed in json.loads(headers)]
    return Outbound(topic=topic, key=key, value=value, headers=pairs)


async def record_processed(
    db: aiosqlite.Connection,
    message_id: str,
    message_type: str,
    at: datetime,
    reply: Outbound | None,
) -> None:
    """Record that ``message_id`` was processed, with the reply to replay for it."""
    headers = None if reply is None else json.dumps([[n, v.hex()] for n, v in reply.headers])
    await db.execute(
        "INSERT INTO processed VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            message_id,
            message_type,
            at.isoformat(),
            None if reply is None else reply.topic,
            None if reply is None else reply.key,
            headers,
            None if reply is None else reply.value,
        ),
    )


async def is_tombstoned(db: aiosqlite.Connection, command_id: str) -> bool:
    """Whether a compensation named ``command_id`` before it was processed here."""
    async with db.execute("SELECT 1 FROM tombstones WHERE command_id = ?", (command_id,)) as c:
        return await c.fetchone() is not None


async def record_tombstones(
    db: aiosqlite.Connection, command_ids: Sequence[str], compensated_by: str, at: datetime
) -> list[str]:
    """Tombstone each of ``command_ids`` not processed (nor tombstoned) yet; returns those."""
    added = []
    for command_id in command_ids:
        if await find_processed(db, command_id) is not None:
            continue
        cursor = await db.execute(
            "INSERT OR IGNORE INTO tombstones VALUES (?, ?, ?)",
            (command_id, compensated_by, at.isoformat()),
        )
        if cursor.rowcount == 1:
            added.append(command_id)
    return added


async def tombstoned_ids(db: aiosqlite.Connection) -> list[str]:
    """Every tombstoned command id (for audits)."""
    async with db.execute("SELECT command_id FROM tombstones ORDER BY rowid") as cursor:
        return [str(row[0]) async for row in cursor]
