"""A service's outbox: domain events stored with the business change, published later.

A service writes the encoded event (headers as hex JSON, value) into a row of its own
table in the same SQLite transaction as the change, with ``published = 0``; `publish`
sends it and marks the row, and `publish_pending` resends every unmarked row on start.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sagas.participant.store import Outbound, Store

if TYPE_CHECKING:
    from sagas.participant.service import ParticipantService


@dataclass(frozen=True)
class Outbox:
    """Where a service keeps its unpublished events.

    Attributes:
        table, key: the table and its key column (the event's Kafka key); constants of
            the service, never input.
        topic: the logical events topic (the service adds its prefix).
    """

    table: str
    key: str
    topic: str

    async def mark_published(self, store: Store, key: str) -> None:
        async with store.transaction() as db:
            await db.execute(f"UPDATE {self.table} SET published = 1 WHERE {self.key} = ?", (key,))

    async def publish(self, service: ParticipantService, key: str, out: Outbound) -> None:
        """Send one stored event, then mark it published."""
        await service.send([out])
        await self.mark_published(service.store, key)

    async def publish_pending(self, service: ParticipantService) -> None:
        """Publish every stored event Kafka has not acknowledged yet."""
        async with service.store.db.execute(
            f"SELECT {self.key}, event_headers, event_value FROM {self.table} WHERE published = 0"
        ) as cursor:
            pending = list(await cursor.fetchall())
        for key, headers, value in pending:
            pairs = [(str(n), bytes.fromhex(v)) for n, v in json.loads(headers)]
            out = Outbound(
                topic=service.topic(self.topic), key=str(key).encode(), value=value, headers=pairs
            )
            await self.publish(service, str(key), out)
