"""Producers on a `MemoryBroker`: `MemoryTransactionalProducer` (a transactional id's)
and `MemoryIdempotentProducer` (no transactions)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import timedelta

from sagas.runtime.transport.memory.broker import MemoryBroker
from sagas.runtime.transport.records import TP, Delivered, OutRecord


class MemoryTransactionalProducer:
    """`TransactionalProducer` on a `MemoryBroker`.

    Each call is one request to the broker: it yields to the loop first (other tasks run
    in between, as they would during a round trip), then takes effect at once. A record
    is written when `send` returns (its future is resolved). Calls after a newer producer
    of the same transactional id started raise `FencedError`; calls in the wrong order
    (`send` outside a transaction, `begin` inside one) raise `RuntimeError`.
    ``request_timeout`` is accepted for the protocol; nothing here waits on a request.
    """

    def __init__(
        self, broker: MemoryBroker, transactional_id: str, request_timeout: timedelta
    ) -> None:
        self.transactional_id = transactional_id
        self._broker = broker
        self._request_timeout = request_timeout
        self._epoch: int | None = None
        self._closed = False

    def _current(self) -> int:
        if self._closed or self._epoch is None:
            raise RuntimeError(f"producer {self.transactional_id} is not running")
        return self._epoch

    async def start(self) -> None:
        await asyncio.sleep(0)  # a request: let other tasks run
        self._epoch = self._broker.init_producer(self.transactional_id)

    async def begin(self) -> None:
        # aiokafka begins locally; the broker hears of the transaction with its first
        # request. Either way a fenced producer fails here or at its next call.
        self._broker.begin(self.transactional_id, self._current())

    async def send(self, record: OutRecord) -> asyncio.Future[Delivered]:
        epoch = self._current()
        await asyncio.sleep(0)
        delivered: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        delivered.set_result(self._broker.write(self.transactional_id, epoch, record))
        return delivered

    async def send_offsets(self, offsets: Mapping[TP, int], group_id: str) -> None:
        epoch = self._current()
        await asyncio.sleep(0)
        self._broker.add_offsets(self.transactional_id, epoch, offsets, group_id)

    async def commit(self) -> None:
        epoch = self._current()
        await asyncio.sleep(0)
        self._broker.commit(self.transactional_id, epoch)

    async def abort(self) -> None:
        epoch = self._current()
        await asyncio.sleep(0)
        self._broker.abort(self.transactional_id, epoch)

    async def stop(self) -> None:
        # An open transaction stays open, as on Kafka, until the next producer of the
        # transactional id aborts it (or `MemoryBroker.time_out_transaction`).
        self._closed = True

    async def abandon(self) -> None:
        self._closed = True


class MemoryIdempotentProducer:
    """`Producer` on a `MemoryBroker`: each record is written, outside any transaction,
    one request after `send` is called (other tasks run in between)."""

    def __init__(self, broker: MemoryBroker, name: str, request_timeout: timedelta) -> None:
        self.name = name
        self._broker = broker
        self._request_timeout = request_timeout
        self._running = False

    async def start(self) -> None:
        await asyncio.sleep(0)
        self._running = True

    async def send(self, record: OutRecord) -> asyncio.Future[Delivered]:
        if not self._running:
            raise RuntimeError(f"producer {self.name} is not running")
        await asyncio.sleep(0)
        delivered: asyncio.Future[Delivered] = asyncio.get_running_loop().create_future()
        delivered.set_result(self._broker.publish(record))
        return delivered

    async def stop(self) -> None:
        self._running = False

    async def abandon(self) -> None:
        self._running = False
