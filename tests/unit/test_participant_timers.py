"""`Every` / `Timers` / `run_timers`: periodic work of a participant on its store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosqlite
import pytest

from sagas.participant import Every, Participant, Store, Timers, run_timers

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SCHEMA = "CREATE TABLE IF NOT EXISTS ticks (name TEXT, at TEXT);"


async def often(db: aiosqlite.Connection, now: datetime) -> None:
    await db.execute("INSERT INTO ticks VALUES ('often', ?)", (now.isoformat(),))


async def rarely(db: aiosqlite.Connection, now: datetime) -> None:
    await db.execute("INSERT INTO ticks VALUES ('rarely', ?)", (now.isoformat(),))


async def broken(db: aiosqlite.Connection, now: datetime) -> None:
    await db.execute("INSERT INTO ticks VALUES ('broken', ?)", (now.isoformat(),))
    raise RuntimeError("bug")


def service(*timers: Every) -> Participant:
    return Participant(name="t", schema=SCHEMA, timers=timers)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store(tmp_path / "t.sqlite3").open(SCHEMA)
    try:
        yield s
    finally:
        await s.close()


async def ticks(store: Store) -> list[tuple[str, str]]:
    async with store.db.execute("SELECT name, at FROM ticks ORDER BY rowid") as cursor:
        return [(str(n), str(a)) async for n, a in cursor]


async def test_each_timer_runs_at_once_then_every_interval(store: Store) -> None:
    timers = Timers(
        service(Every(timedelta(minutes=1), often), Every(timedelta(minutes=5), rarely)), store
    )
    assert await timers.tick(T0) == T0 + timedelta(minutes=1)
    assert await timers.tick(T0 + timedelta(seconds=59)) == T0 + timedelta(minutes=1)
    await timers.tick(T0 + timedelta(minutes=1))
    await timers.tick(T0 + timedelta(minutes=5))
    at = [(n, datetime.fromisoformat(a) - T0) for n, a in await ticks(store)]
    assert at == [
        ("often", timedelta(0)),
        ("rarely", timedelta(0)),
        ("often", timedelta(minutes=1)),
        ("often", timedelta(minutes=5)),
        ("rarely", timedelta(minutes=5)),
    ]


async def test_a_failing_timer_is_rolled_back_and_stops_nothing(store: Store) -> None:
    timers = Timers(
        service(Every(timedelta(minutes=1), broken), Every(timedelta(minutes=1), often)), store
    )
    await timers.tick(T0)
    await timers.tick(T0 + timedelta(minutes=1))
    assert [n for n, _ in await ticks(store)] == ["often", "often"]  # broken's row rolled back
    assert (timers.runs, timers.failures) == (2, 2)


def test_an_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Every(timedelta(0), often)


async def test_run_timers_drives_them_until_cancelled(store: Store) -> None:
    task = asyncio.create_task(run_timers(service(Every(timedelta(milliseconds=20), often)), store))
    try:
        async with asyncio.timeout(10):
            # polls the store the timer task writes: there is no event to await
            while len(await ticks(store)) < 3:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert len(await ticks(store)) >= 3


async def test_run_timers_returns_when_there_is_none(store: Store) -> None:
    async with asyncio.timeout(5):
        await run_timers(service(), store)
    assert await ticks(store) == []
