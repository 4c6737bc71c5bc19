"""The read model's SQLite file (aiosqlite, WAL): instances, outcome events, offsets.

Invariant: the rows a batch of records produced and the offsets after that batch are
written in one SQLite transaction, so after a crash the read model resumes exactly where
its last write ended (records are keyed, so reading one twice changes nothing anyway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from sagas.ops.errors import OpsError
from sagas.ops.readmodel.describe import search_text, waiting_for
from sagas.ops.readmodel.schema import SCHEMA
from sagas.runtime.store import StoredInstance

TERMINAL = ("COMPLETED", "COMPENSATED")
"""States nothing more happens in (FAILED waits for an operator)."""


def iso(moment: datetime) -> str:
    """Sortable UTC text, the same form the engine stores."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Outcome:
    """One outcome event of ``sagas.events``."""

    id: str
    type: str
    saga_name: str
    saga_id: str
    at: str
    step: str | None = None
    reason: str | None = None


@dataclass
class Batch:
    """What one poll of the changelogs and ``sagas.events`` brought."""

    instances: list[StoredInstance] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    history: list[tuple[str, str, int, str]] = field(default_factory=list)
    """(saga, saga id, seq, entry as JSON) moved out of instances by the engine."""


@dataclass(frozen=True)
class Query:
    """A selection of instances: every given filter must hold."""

    saga: str | None = None
    states: tuple[str, ...] = ()
    since: datetime | None = None
    """Updated at or after this moment."""
    text: str | None = None
    """Case-insensitive substring of the saga id or the saga data."""
    limit: int = 50
    offset: int = 0


@dataclass(frozen=True)
class InstanceRow:
    """One saga instance as lists show it."""

    saga_name: str
    saga_id: str
    state: str
    version: int
    partition: int
    started_at: str | None
    updated_at: str
    ended_at: str | None
    next_due: str | None
    waiting: str


_ROW = (
    "saga_name, saga_id, state, version, partition, started_at, updated_at, ended_at,"
    " next_due, waiting"
)


class OpsStore:
    """Async access to the read model's file. Open with `OpsStore.open(path)`."""

    def __init__(self, db: aiosqlite.Connection, path: Path) -> None:
        self._db = db
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> OpsStore:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(path)
            # WAL: the dashboard's readers never wait for the follower's writes.
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.execute("PRAGMA busy_timeout=5000")
            await db.executescript(SCHEMA)
            await db.commit()
        except aiosqlite.Error as exc:
            raise OpsError(f"cannot open the read model at {path}: {exc}") from exc
        return cls(db, path)

    async def close(self) -> None:
        await self._db.close()

    async def __aenter__(self) -> OpsStore:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- writes ---------------------------------------------------------------------

    async def apply(self, batch: Batch) -> None:
        """Write a batch's instances, outcomes and offsets atomically."""
        try:
            await self._db.execute("BEGIN")
            for inst in batch.instances:
                await self._upsert(inst)
            await self._db.executemany(
                "INSERT OR IGNORE INTO outcomes (id, type, saga_name, saga_id, step, reason, at)"
                " VALUES (?,?,?,?,?,?,?)",
                [
                    (o.id, o.type, o.saga_name, o.saga_id, o.step, o.reason, o.at)
                    for o in batch.outcomes
                ],
            )
            await self._db.executemany(
                "INSERT OR REPLACE INTO history (saga_name, saga_id, seq, entry) VALUES (?,?,?,?)",
                batch.history,
            )
            await self._db.executemany(
                "INSERT INTO offsets (topic, partition, next_offset) VALUES (?,?,?)"
                " ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset",
                [(t, p, n) for (t, p), n in batch.offsets.items()],
            )
            await self._db.commit()
        except aiosqlite.Error as exc:
            await self._db.rollback()
            raise OpsError(f"cannot write to the read model {self.path}: {exc}") from exc

    async def _upsert(self, inst: StoredInstance) -> None:
        body = inst.body_dict()
        await self._db.execute(
            "INSERT OR REPLACE INTO instances (saga_name, saga_id, partition, version, state,"
            " started_at, updated_at, ended_at, next_due, waiting, search, body)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                inst.saga_name,
                inst.saga_id,
                inst.partition,
                inst.version,
                inst.state,
                inst.started_at,
                inst.updated_at,
                inst.ended_at,
                inst.next_due,
                waiting_for(body),
                search_text(body),
                inst.body_text(),
            ),
        )

    # -- reads ----------------------------------------------------------------------

    async def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset to read, by (topic, partition)."""
        async with self._db.execute("SELECT topic, partition, next_offset FROM offsets") as cur:
            return {(str(t), int(p)): int(n) async for t, p, n in cur}

    async def select(self, query: Query) -> tuple[list[InstanceRow], int]:
        """The page of instances ``query`` selects (latest update first), and their total."""
        where, params = _where(query)
        async with self._db.execute(f"SELECT COUNT(*) FROM instances{where}", params) as cur:
            row = await cur.fetchone()
        total = int(row[0]) if row else 0
        sql = f"SELECT {_ROW} FROM instances{where} ORDER BY updated_at DESC LIMIT ? OFFSET ?"
        async with self._db.execute(sql, [*params, query.limit, query.offset]) as cur:
            rows = [InstanceRow(*r) async for r in cur]
        return rows, total

    async def find(self, saga_id: str, saga: str | None = None) -> list[InstanceRow]:
        """The instances with this id (one per saga type that has it)."""
        sql = f"SELECT {_ROW} FROM instances WHERE saga_id = ?"
        params: list[Any] = [saga_id]
        if saga:
            sql += " AND saga_name = ?"
            params.append(saga)
        async with self._db.execute(sql + " ORDER BY saga_name", params) as cur:
            return [InstanceRow(*r) async for r in cur]

    async def body(self, saga: str, saga_id: str) -> dict[str, Any] | None:
        """The stored instance, as the engine serialised it, with its whole history: the
        entries the engine moved out (``sagas.<saga>.history``) before the ones it kept."""
        async with self._db.execute(
            "SELECT body FROM instances WHERE saga_name = ? AND saga_id = ?", (saga, saga_id)
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        body: dict[str, Any] = json.loads(row[0])
        offset = body.get("history_offset") or 0
        if offset:
            async with self._db.execute(
                "SELECT entry FROM history WHERE saga_name = ? AND saga_id = ? AND seq < ?"
                " ORDER BY seq",
                (saga, saga_id, offset),
            ) as cur:
                moved = [json.loads(r[0]) async for r in cur]
            body["history"] = [*moved, *(body.get("history") or [])]
        return body

    async def stuck(self, saga: str | None = None, limit: int = 20) -> list[InstanceRow]:
        """The stalest instances that have not ended for good (FAILED included)."""
        sql = f"SELECT {_ROW} FROM instances WHERE state NOT IN (?, ?)"
        params: list[Any] = list(TERMINAL)
        if saga:
            sql += " AND saga_name = ?"
            params.append(saga)
        sql += " ORDER BY updated_at ASC LIMIT ?"
        async with self._db.execute(sql, [*params, limit]) as cur:
            return [InstanceRow(*r) async for r in cur]

    async def counts(self) -> dict[str, dict[str, int]]:
        """Instances by saga type, by state."""
        found: dict[str, dict[str, int]] = {}
        async with self._db.execute(
            "SELECT saga_name, state, COUNT(*) FROM instances GROUP BY saga_name, state"
        ) as cur:
            async for saga, state, n in cur:
                found.setdefault(str(saga), {})[str(state)] = int(n)
        return found

    async def ended_since(self, since: str, saga: str | None = None) -> list[tuple[Any, ...]]:
        """(saga, state, started_at, ended_at, body) of instances that ended since then."""
        sql = (
            "SELECT saga_name, state, started_at, ended_at, body FROM instances WHERE ended_at >= ?"
        )
        params: list[Any] = [since]
        if saga:
            sql += " AND saga_name = ?"
            params.append(saga)
        async with self._db.execute(sql, params) as cur:
            return [tuple(r) async for r in cur]

    async def outcomes_since(self, since: str, saga: str | None = None) -> list[Outcome]:
        sql = "SELECT id, type, saga_name, saga_id, at, step, reason FROM outcomes WHERE at >= ?"
        params: list[Any] = [since]
        if saga:
            sql += " AND saga_name = ?"
            params.append(saga)
        async with self._db.execute(sql + " ORDER BY at", params) as cur:
            return [Outcome(*r) async for r in cur]

    async def matching(self, query: Query, cap: int = 10_000) -> list[InstanceRow]:
        """Every instance a bulk action's query selects (at most ``cap``)."""
        rows, _ = await self.select(Query(query.saga, query.states, query.since, query.text, cap))
        return rows


def _where(query: Query) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.saga:
        clauses.append("saga_name = ?")
        params.append(query.saga)
    if query.states:
        clauses.append(f"state IN ({','.join('?' * len(query.states))})")
        params.extend(query.states)
    if query.since is not None:
        clauses.append("updated_at >= ?")
        params.append(iso(query.since))
    if query.text:
        clauses.append("instr(search, ?) > 0")
        params.append(query.text.lower())
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), params
