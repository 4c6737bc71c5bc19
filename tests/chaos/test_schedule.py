"""The fault schedule: drawn from the seed alone, so a failing seed replays."""

from __future__ import annotations

import pytest

from sagas.chaos.faults.registry import FAULTS
from sagas.chaos.schedule import WINDOW, ScheduleError, draw, fault_counts


def test_the_same_seed_gives_the_same_schedule() -> None:
    counts = {"engine_kill": 20, "broker_restart": 2, "service_pause": 1}
    assert draw(1234, counts) == draw(1234, dict(reversed(list(counts.items()))))


def test_another_seed_gives_another_schedule() -> None:
    counts = {"engine_kill": 5, "service_kill": 5}
    assert draw(1, counts) != draw(2, counts)


def test_every_fault_is_scheduled_once_in_order_inside_the_window() -> None:
    counts = {"engine_kill": 20, "broker_restart": 2, "zombie_engine": 1}
    schedule = draw(99, counts)
    assert [p.index for p in schedule] == list(range(23))
    assert sorted(schedule, key=lambda p: p.at) == schedule
    assert all(WINDOW[0] < p.at < WINDOW[1] for p in schedule)
    kinds = [p.kind for p in schedule]
    assert {k: kinds.count(k) for k in counts} == counts


def test_counts_from_kinds_and_overrides() -> None:
    counts = fault_counts(["engine_kill", "service_kill"], FAULTS, 2, engine_kill=20)
    assert counts == {"engine_kill": 20, "service_kill": 2}
    assert fault_counts(["engine_kill"], FAULTS, 1, engine_kill=0) == {}


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ScheduleError, match="unknown fault kind"):
        fault_counts(["engine_kil"], FAULTS)
