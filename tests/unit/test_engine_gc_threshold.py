"""`sagas run` sets the garbage collector's first-generation threshold it is given."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from sagas.ops.run_command import collect_less_often
from sagas.settings import EngineSettings


@pytest.fixture
def restored_threshold() -> Iterator[tuple[int, int, int]]:
    before = gc.get_threshold()
    yield before
    gc.set_threshold(*before)


def test_the_first_generation_threshold_is_set_and_the_older_ones_kept(
    restored_threshold: tuple[int, int, int],
) -> None:
    collect_less_often(12_345)

    assert gc.get_threshold() == (12_345, *restored_threshold[1:])


def test_zero_leaves_the_collector_alone(restored_threshold: tuple[int, int, int]) -> None:
    gc.set_threshold(777, 11, 12)

    collect_less_often(0)

    assert gc.get_threshold() == (777, 11, 12)


def test_the_setting_defaults_to_ten_thousand_and_refuses_a_negative_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SAGAS_GC_THRESHOLD", raising=False)
    assert EngineSettings().gc_threshold == 10_000

    monkeypatch.setenv("SAGAS_GC_THRESHOLD", "-1")
    with pytest.raises(ValidationError, match="gc_threshold"):
        EngineSettings()
