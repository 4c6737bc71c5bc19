"""The engine's cache of committed instances: bounded, least recently used out first."""

from __future__ import annotations

from typing import Any

import pytest

from sagas.machine import SagaInstance
from sagas.runtime.instance_cache import InstanceCache
from sagas.testing import Harness
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from tests.unit.test_order_fulfilment import order, participants

SAGA = ORDER_FULFILMENT.name


@pytest.fixture(scope="module")
def instances() -> list[SagaInstance[Any]]:
    """Four real, finished order sagas."""
    harness = Harness(ORDER_FULFILMENT, participants())
    ids = [harness.start(order(f"o-{i}")) for i in range(4)]
    harness.run()
    return [harness.instance(saga_id) for saga_id in ids]


def test_keeps_the_last_committed_version(instances: list[SagaInstance[Any]]) -> None:
    cache = InstanceCache(8)
    first = instances[0]
    assert cache.get(SAGA, 0, first.saga_id) is None
    cache.committed(SAGA, 0, [first])
    assert cache.get(SAGA, 0, first.saga_id) is first
    assert cache.get(SAGA, 1, first.saga_id) is None  # another partition's key
    newer = instances[1]
    cache.committed(SAGA, 0, [newer])
    assert cache.get(SAGA, 0, newer.saga_id) is newer


def test_bounded_least_recently_used_out_first(instances: list[SagaInstance[Any]]) -> None:
    a, b, c, d = instances
    cache = InstanceCache(3)
    cache.committed(SAGA, 0, [a, b, c])
    assert cache.get(SAGA, 0, a.saga_id) is a  # a is now the most recently used
    cache.committed(SAGA, 0, [d])
    assert len(cache) == 3
    assert cache.get(SAGA, 0, b.saga_id) is None  # b was the least recently used
    assert [cache.get(SAGA, 0, i.saga_id) for i in (a, c, d)] == [a, c, d]


def test_drop_forgets_one_partition_only(instances: list[SagaInstance[Any]]) -> None:
    a, b, c, _ = instances
    cache = InstanceCache(8)
    cache.committed(SAGA, 0, [a, b])
    cache.committed(SAGA, 1, [c])
    cache.drop(SAGA, 0)
    assert cache.get(SAGA, 0, a.saga_id) is None
    assert cache.get(SAGA, 0, b.saga_id) is None
    assert cache.get(SAGA, 1, c.saga_id) is c


def test_zero_capacity_keeps_nothing_and_negative_is_refused(
    instances: list[SagaInstance[Any]],
) -> None:
    cache = InstanceCache(0)
    cache.committed(SAGA, 0, instances)
    assert len(cache) == 0
    with pytest.raises(ValueError, match="capacity"):
        InstanceCache(-1)
