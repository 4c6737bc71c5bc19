"""Follow `sagas.events`: which sagas started and how each ended, across all engines."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer

from sagas.contracts import topics
from sagas.contracts.codec import Codec
from sagas.contracts.errors import ContractError

TERMINAL = {
    "sagas.SagaCompleted": "COMPLETED",
    "sagas.SagaCompensated": "COMPENSATED",
    "sagas.SagaFailed": "FAILED",
}


@dataclass
class Outcome:
    saga_name: str
    started: datetime | None = None
    ended: datetime | None = None
    state: str = "RUNNING"
    reason: str | None = None

    @property
    def cycle_ms(self) -> float | None:
        if self.started is None or self.ended is None:
            return None
        return (self.ended - self.started).total_seconds() * 1000


@dataclass
class OutcomeWatcher:
    """Reads ``<prefix>sagas.events`` from the beginning (read_committed) until stopped."""

    bootstrap_servers: str
    codec: Codec
    topic_prefix: str = ""
    client_options: dict[str, Any] = field(default_factory=dict, repr=False)  # holds secrets
    sagas: dict[str, Outcome] = field(default_factory=dict)
    undecodable: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def counts(self, saga_name: str | None = None) -> Counter[str]:
        return Counter(
            o.state for o in self.sagas.values() if saga_name is None or o.saga_name == saga_name
        )

    def ended(self, saga_ids: set[str]) -> bool:
        return all((o := self.sagas.get(i)) is not None and o.state != "RUNNING" for i in saga_ids)

    async def changed(self, wait_s: float) -> None:
        """Wait until something new was read, or ``wait_s`` seconds pass."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), wait_s)
        self._changed.clear()

    @property
    def topic(self) -> str:
        """The broker's name of the outcomes topic."""
        return topics.physical(self.topic_prefix, topics.OUTCOMES)

    async def run(self) -> None:
        topic = self.topic
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            **self.client_options,
        )
        await consumer.start()
        try:
            # The engine creates the topic when it starts: subscribing before would have
            # the client log an error at every metadata refresh until then.
            while True:
                if topic in await consumer.topics():
                    break
                await asyncio.sleep(0.2)  # polling interval of the topic's creation
            consumer.subscribe([topic])
            while True:
                batch = await consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        self._apply(record.headers, record.value)
                if batch:
                    self._changed.set()
        finally:
            await consumer.stop()

    def _apply(self, headers: Any, value: bytes | None) -> None:
        try:
            envelope = self.codec.decode(headers, value)
        except ContractError:
            self.undecodable += 1
            return
        p = envelope.payload
        saga_id: str = getattr(p, "saga_id", "")
        outcome = self.sagas.setdefault(saga_id, Outcome(getattr(p, "saga_name", "")))
        if envelope.type == "sagas.SagaStarted":
            outcome.started = getattr(p, "at", None)
        elif envelope.type in TERMINAL:
            outcome.state = TERMINAL[envelope.type]
            outcome.ended = getattr(p, "at", None)
            outcome.reason = getattr(p, "reason", None)
