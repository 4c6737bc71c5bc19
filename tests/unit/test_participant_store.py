"""The participant's store: where its statements run, and what a transaction keeps."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sagas.participant.store import Store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with Store(tmp_path / "s.sqlite3") as opened:
        await opened.db.execute("CREATE TABLE t (v INTEGER)")
        yield opened


async def test_statements_in_a_transaction_run_on_the_loop_thread_and_commit_does_not(
    store: Store,
) -> None:
    """The point of the inline connection: no thread hop per statement, but the fsync of
    ``COMMIT`` off the event loop."""
    threads: list[tuple[str, int]] = []
    await store.db.set_trace_callback(
        lambda sql: threads.append((sql.split()[0], threading.get_ident()))
    )
    async with store.transaction() as db:
        await db.execute("INSERT INTO t VALUES (1)")
        async with db.execute("SELECT COUNT(*) FROM t") as cursor:
            assert await cursor.fetchone() == (1,)
    await store.db.set_trace_callback(None)  # type: ignore[arg-type]  # sqlite3 takes None

    loop_thread = threading.get_ident()
    on_loop = {verb for verb, ident in threads if ident == loop_thread}
    assert on_loop == {"PRAGMA", "BEGIN", "INSERT", "SELECT"}  # PRAGMA: busy_timeout
    assert {verb for verb, _ in threads} - on_loop == {"COMMIT"}


async def test_a_begin_that_finds_another_writer_waits_off_the_loop(tmp_path: Path) -> None:
    """Another connection holds the write lock: the transaction waits for it on the
    connection's thread (the event loop runs meanwhile), then proceeds."""
    path = tmp_path / "s.sqlite3"
    async with Store(path) as store:
        await store.db.execute("CREATE TABLE t (v INTEGER)")
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t VALUES (1)")

        async def write() -> None:
            async with store.transaction() as db:
                await db.execute("INSERT INTO t VALUES (2)")

        writing = asyncio.create_task(write())
        # One step of the task: its BEGIN found the lock taken without waiting on the
        # loop (had it waited there, the loop would be back only once it had failed).
        await asyncio.sleep(0)
        assert not writing.done()
        await asyncio.to_thread(other.execute, "COMMIT")
        await writing
        other.close()
        async with store.db.execute("SELECT v FROM t ORDER BY v") as cursor:
            assert list(await cursor.fetchall()) == [(1,), (2,)]


async def test_a_transaction_that_raises_keeps_nothing_and_the_next_one_works(
    store: Store,
) -> None:
    async def failing() -> None:
        async with store.transaction() as db:
            await db.execute("INSERT INTO t VALUES (1)")
            raise RuntimeError("handler bug")

    with pytest.raises(RuntimeError):
        await failing()
    async with store.transaction() as db:
        await db.execute("INSERT INTO t VALUES (2)")
    async with store.db.execute("SELECT v FROM t") as cursor:
        assert list(await cursor.fetchall()) == [(2,)]


async def test_a_read_outside_a_transaction_still_goes_to_the_connection_thread(
    store: Store,
) -> None:
    threads: list[int] = []
    await store.db.set_trace_callback(lambda sql: threads.append(threading.get_ident()))
    async with store.db.execute("SELECT 1") as cursor:
        await cursor.fetchone()
    await store.db.set_trace_callback(None)  # type: ignore[arg-type]  # sqlite3 takes None
    assert threads
    assert threading.get_ident() not in threads


async def test_a_closed_store_refuses_transactions(tmp_path: Path) -> None:
    store = await Store(tmp_path / "s.sqlite3").open()
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        async with store.transaction():
            pass


def test_sqlite_is_built_serialized() -> None:
    """The inline connection shares one sqlite3 connection between two threads."""
    assert sqlite3.threadsafety == 3
