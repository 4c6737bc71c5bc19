"""Writes to the engine's store that wait out a full or read-only store.

The store is written after the Kafka transaction committed (or from the changelog, on
catch-up): Kafka already holds the change, so a write the store refuses for now (disk
full, file read-only, locked, I/O error) must be kept and retried, never dropped and
never allowed to crash the engine. While it waits, the polling loop waits too (its next
poll starts once every partition's batch reached the store): no input is decided
against a store that is behind Kafka (deciding on a stale instance would fire its
timers again and overwrite newer changelog records). Partitions committing at the same
time may each hold a write; together they are one episode.
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
        self._held = 0  # writes being held now (partitions commit concurrently)
        self._began = 0.0  # when the current episode started

    @property
    def waiting(self) -> bool:
        """Whether a write is being held now."""
        return self._held > 0

    async def apply(self, changes: Changes) -> None:
        """Write ``changes``; returns once the store took them (waits as long as needed)."""
        try:
            await self._store.apply(changes)
            return
        except StoreUnwritable as exc:
            first = exc
        if self._held == 0:  # the first refusal of an episode; others join it
            self.episodes += 1
            self._began = time.monotonic()
        self.refused += 1
        self._held += 1
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
            self._held -= 1
        if self._held == 0:  # the episode ends with its last held write
            log.info(
                "saga store %s writable again after %.1fs (%d writes refused so far)",
                self._store.path,
                time.monotonic() - self._began,
                self.refused,
            )
