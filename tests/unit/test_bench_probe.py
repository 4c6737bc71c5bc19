"""The hop probe's arithmetic and the saga's hops, counted from its definition."""

from __future__ import annotations

from datetime import timedelta

import pytest

from sagas import Parallel, Saga, Step
from sagas.bench.probe import SagaHops, saga_hops, stats
from sagas.errors import SagasError
from services.definitions.order_fulfilment import ORDER_FULFILMENT


def test_hops_run_from_one_consume_to_the_next() -> None:
    hop = stats("transactional", [0.0, 0.004, 0.007, 0.017, 0.020])
    assert hop.hops == 4
    assert hop.p50_ms == pytest.approx(4.0)  # 3, 3, 4, 10 ms: the nearest rank above half
    assert hop.p99_ms == pytest.approx(10.0)
    assert hop.max_ms == pytest.approx(10.0)
    assert hop.mean_ms == pytest.approx(5.0)
    with pytest.raises(SagasError):
        stats("idempotent", [1.0])


def test_the_order_saga_crosses_ten_hops() -> None:
    # The router's (OrderPlaced -> inbox), the engine's five (start -> ReserveStock,
    # three replies -> the next command, PaymentCaptured -> OrderFulfilled), the
    # participants' four (command -> reply).
    assert saga_hops(ORDER_FULFILMENT, routed=True) == SagaHops(transactional=6, idempotent=4)
    assert saga_hops(ORDER_FULFILMENT, routed=False) == SagaHops(transactional=5, idempotent=4)
    assert saga_hops(ORDER_FULFILMENT, routed=True).total == 10


def test_a_parallel_group_is_one_stage_on_the_path() -> None:
    reserve, authorize, ship, capture = ORDER_FULFILMENT.steps
    assert isinstance(authorize, Step)
    assert isinstance(ship, Step)
    together = Parallel(name="authorize_and_ship", branches=(authorize, ship))
    definition = Saga(
        name="order_parallel",
        version=1,
        data=ORDER_FULFILMENT.data,
        starts=ORDER_FULFILMENT.starts,
        steps=(reserve, together, capture),
        deadline=timedelta(minutes=15),
    )
    assert saga_hops(definition, routed=True) == SagaHops(transactional=5, idempotent=3)


def test_the_floor_takes_each_hop_at_its_kinds_median() -> None:
    txn = stats("transactional", [0.0, 0.004, 0.008])
    idem = stats("idempotent", [0.0, 0.001, 0.002])
    assert SagaHops(6, 4).floor_ms(txn, idem) == pytest.approx(6 * 4.0 + 4 * 1.0)
