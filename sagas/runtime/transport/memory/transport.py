"""`MemoryTransport` and its `PartitionReader`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta

from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.base import Rebalance
from sagas.runtime.transport.memory.broker import MemoryBroker
from sagas.runtime.transport.memory.consumer import MemoryGroupConsumer
from sagas.runtime.transport.memory.producer import (
    MemoryIdempotentProducer,
    MemoryTransactionalProducer,
)
from sagas.runtime.transport.records import TP, Consumed

READ_WAIT = timedelta(seconds=1)
"""How long `MemoryPartitionReader.read` waits for its partition to move before it
yields an empty slice (the Kafka reader's fetch timeout)."""


class MemoryTransport:
    """The clients of one `MemoryBroker`: a process's view of it.

    Args:
        broker: shared by the transports of the processes a test models; a new one
            when omitted.
    """

    def __init__(self, broker: MemoryBroker | None = None) -> None:
        self.broker = broker if broker is not None else MemoryBroker()

    def physical(self, topic: str) -> str:
        """Topic names are not prefixed in memory."""
        return topic

    def group_consumer(
        self,
        group_id: str,
        topics: Sequence[str],
        listener: Rebalance,
        *,
        session_timeout: timedelta,
        fetch_wait: timedelta,
    ) -> MemoryGroupConsumer:
        # fetch_wait has no use here: a poll wakes as soon as something changes.
        return MemoryGroupConsumer(self.broker, group_id, topics, listener, session_timeout)

    def transactional_producer(
        self, transactional_id: str, *, request_timeout: timedelta
    ) -> MemoryTransactionalProducer:
        return MemoryTransactionalProducer(self.broker, transactional_id, request_timeout)

    def idempotent_producer(
        self, name: str, *, request_timeout: timedelta
    ) -> MemoryIdempotentProducer:
        return MemoryIdempotentProducer(self.broker, name, request_timeout)

    def partition_reader(self) -> MemoryPartitionReader:
        return MemoryPartitionReader(self.broker)

    async def ensure_topics(self, specs: Sequence[TopicSpec], replication_factor: int) -> list[str]:
        # One broker: no replicas, any replication factor is accepted.
        return self.broker.create_topics(specs)

    async def close(self) -> None:
        return None


class MemoryPartitionReader:
    """`PartitionReader` on a `MemoryBroker`."""

    def __init__(self, broker: MemoryBroker) -> None:
        self._broker = broker

    async def end_offset(self, tp: TP) -> int:
        return self._broker.log(tp).last_stable_offset

    async def read(
        self, tp: TP, start: int, end: int, max_records: int
    ) -> AsyncIterator[tuple[list[Consumed], int]]:
        log = self._broker.log(tp)
        position = start
        while position < end:
            changed = self._broker.changed()
            # Like a Kafka fetch: whatever is readable, up to the LSO (maybe past ``end``).
            records, after = log.read(position, max_records)
            if after == position and await self._broker.wait(changed, READ_WAIT.total_seconds()):
                continue
            position = after
            yield records, position

    async def close(self) -> None:
        return None
