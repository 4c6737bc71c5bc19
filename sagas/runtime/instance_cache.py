"""The instances the engine committed last, kept decoded so the next input skips SQLite.

A saga's inputs come one after another (a reply, then the next step's reply), each a
few tens of milliseconds after the engine committed the previous change. Loading the
instance again meant a store query and decoding its whole body into dataclasses for
every input (`SagaWorker._prefetch`: 14 % of the saturated engine's samples).

The cache holds only what the store holds: an instance enters it after its change was
committed to Kafka *and* written to the store, and a partition's entries are dropped
whenever the partition's state may change another way (taken, given up, in doubt,
caught up from the changelog). Instances are immutable, so an entry can be shared.
Bounded: least recently used entries are dropped beyond ``capacity`` (memory must not
grow with the number of stored sagas).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sagas.machine import SagaInstance

DEFAULT_CAPACITY = 2048
"""Instances kept per engine process: far more than are in flight at saturation here
(about 1,000 with the bench's backlog), a few MiB."""


class InstanceCache:
    """Recently committed instances by (saga, partition, saga id), least recently used
    dropped first."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self._capacity = capacity
        self._items: OrderedDict[tuple[str, int, str], SagaInstance[Any]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, saga: str, partition: int, saga_id: str) -> SagaInstance[Any] | None:
        key = (saga, partition, saga_id)
        instance = self._items.get(key)
        if instance is not None:
            self._items.move_to_end(key)
        return instance

    def committed(self, saga: str, partition: int, instances: Iterable[SagaInstance[Any]]) -> None:
        """Remember ``instances`` as now stored (call only once the store has them)."""
        for instance in instances:
            key = (saga, partition, instance.saga_id)
            self._items[key] = instance
            self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def drop(self, saga: str, partition: int) -> None:
        """Forget every instance of one partition."""
        for key in [k for k in self._items if k[0] == saga and k[1] == partition]:
            del self._items[key]
