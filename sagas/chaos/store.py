"""A store that can refuse writes on command: the engine's SQLite faults, as a wrapper.

`FaultyStore` is the engine's `Store` plus `refuse_writes`, which the chaos runner's
engine entry point (`sagas.chaos.engine`) opens instead of the plain store; nothing of
it exists in an engine started by ``sagas run``.
"""

from __future__ import annotations

from typing import Literal

from sagas.runtime.store import Store

WriteFault = Literal["full", "readonly"]
"""How `FaultyStore.refuse_writes` makes writes fail."""


class FaultyStore(Store):
    """The engine's store, whose connection refuses writes while a fault is set."""

    _max_pages: int | None = None
    """The connection's ``max_page_count`` before any fault (what healing restores)."""

    async def refuse_writes(self, fault: WriteFault | None) -> None:
        """Make this connection's writes fail, or heal it (None).

        ``full`` caps the file at its current page count (``PRAGMA max_page_count``), so
        the next write that needs a new page fails with SQLITE_FULL; ``readonly`` sets
        ``PRAGMA query_only``, so every write fails with SQLITE_READONLY. Reads go on.
        """
        async with self._writing:  # between two batches' writes, never inside one
            await self._refuse_writes(fault)

    async def _refuse_writes(self, fault: WriteFault | None) -> None:
        if self._max_pages is None:
            async with self._db.execute("PRAGMA max_page_count") as cur:
                row = await cur.fetchone()
            self._max_pages = int(row[0]) if row else 1073741823
        await self._db.execute(f"PRAGMA query_only = {'ON' if fault == 'readonly' else 'OFF'}")
        cap = self._max_pages
        if fault == "full":
            async with self._db.execute("PRAGMA page_count") as cur:
                row = await cur.fetchone()
            cap = int(row[0]) if row else 1
        await self._db.execute(f"PRAGMA max_page_count = {cap}")
