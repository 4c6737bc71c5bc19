"""Writes to the engine's store that wait out a full or read-only store.

The store is written after the Kafka transaction committed (or from the changelog, on
catch-up): Kafka already holds the change, so a write the store refuses for now (disk
full, file read-only, locked, I/O error) must be kept and retried, never dropped and
never allowed to crash the engine. While it waits, the partition worker waits too: no
input of any partition is decided against a store that is behind Kafka (deciding on a
stale instance would fire its timers again and overwrite newer changelog records).
Other store errors (a corrupt file, a bug) are raised as before.

A stop request waits for the held write too (the loop stops after the batch in flight);
SIGKILL is always safe: on start, catch-up copies from the changelog what the store
missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

from sagas.runtime.errors import StoreUnwritable
from sagas.runtime.store import Changes, Store

log = logging.getLogger(__name__)


class StoreWriter:
    """Applies `Changes` to a `Store`, retrying with backoff while it refuses writes.

    Args:
        store: the engine's store.
        first_delay: the first wait after a refused write; doubled up to ``max_delay``.
        max_delay: the longest wait between two attempts.

    Attributes:
        episodes: how many times the store started refusing writes.
        refused: how many writes it refused in all.
        waiting: whether a write is being held now.
    """

    def __init__(
        self,
        store: Store,
        first_delay: timedelta = timedelta(milliseconds=50),
        max_delay: timedelta = timedelta(seconds=1),
    ) -> None:
        self._store = store
        self._first = first_delay.total_seconds()
        self._max = max_delay.total_seconds()
        self.episodes = 0
        self.refused = 0
        self.waiting = False

    async def apply(self, changes: Changes) -> None:
        """Write ``changes``; returns once the store took them (waits as long as needed)."""
        try:
            await self._store.apply(changes)
            return
        except StoreUnwritable as exc:
            first = exc
        self.episodes += 1
        self.refused += 1
        self.waiting = True
        began = time.monotonic()
        log.warning(
            "%s; keeping %s[%d]'s committed changes and retrying (Kafka holds them)",
            first,
            changes.saga_name,
            changes.partition,
        )
        delay = self._first
        try:
            while True:
                await asyncio.sleep(delay)  # backoff between attempts, not synchronisation
                try:
                    await self._store.apply(changes)
                except StoreUnwritable:
                    self.refused += 1
                    delay = min(delay * 2, self._max)
                    continue
                break
        finally:
            self.waiting = False
        log.info(
            "saga store %s writable again after %.1fs (%d writes refused so far)",
            self._store.path,
            time.monotonic() - began,
            self.refused,
        )
