"""`sagas demo`'s warm-up: the same workloads at the same rate, first, not counted."""

from __future__ import annotations

import argparse

import pytest

from sagas.ops.demo.command import _plan, warmup_line, warmup_plan
from sagas.ops.demo.run import DemoPlan
from services.workload import workloads


def plan(orders: int = 200, hires: int = 50, rate: float | None = 10.0) -> DemoPlan:
    wanted = {"order_fulfilment": orders, "onboarding": hires}
    return DemoPlan({k: n for k, n in wanted.items() if n}, workloads(), rate=rate)


def test_the_warmup_keeps_the_rate_and_the_mix_for_the_seconds_asked() -> None:
    measured = plan()
    warm = warmup_plan(measured, 50)
    assert warm is not None
    assert warm.rate == measured.rate
    assert warm.counts == {"order_fulfilment": 400, "onboarding": 100}  # 500 sagas, 50 s
    assert warm.dashboard_port is None
    assert warm.placed == {}
    assert warm.placed is not measured.placed  # its requests are its own
    assert warmup_line(warm).startswith("warming the broker up first: 500 sagas")


def test_no_warmup_when_none_is_asked_or_the_sagas_come_in_a_burst() -> None:
    assert warmup_plan(plan(), 0) is None
    assert warmup_plan(plan(rate=None), 50) is None  # a burst has no rate to keep
    assert warmup_plan(plan(orders=0, hires=0), 50) is None


def test_a_short_warmup_still_places_one_saga_of_each_workload() -> None:
    warm = warmup_plan(plan(orders=200, hires=1), 0.1)
    assert warm is not None
    assert warm.counts == {"order_fulfilment": 1, "onboarding": 1}


def test_a_negative_warmup_is_refused_with_a_clear_error() -> None:
    args = argparse.Namespace(
        orders=10, hires=0, engines=1, rate=10.0, keep=False, port=8080, timeout=60, warmup=-1
    )
    with pytest.raises(SystemExit, match="--warmup must be >= 0"):
        _plan(args)
