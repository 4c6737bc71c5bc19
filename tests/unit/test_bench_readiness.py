"""Readiness of a bench phase: group assignments and the engines' ownership lines."""

from __future__ import annotations

import json
from pathlib import Path

from sagas.bench.readiness import GroupState, covers, group_ready, logs_agree, owned_in_log

INBOX = "p.sagas.order_fulfilment.inbox"
EVENTS = "p.orders.events"


def _text(message: str) -> str:
    return f"2030-01-01 12:00:00,000 engine-1 INFO sagas.runtime.loop {message}"


def _json(message: str) -> str:
    return json.dumps({"time": "2030-01-01T12:00:00", "level": "INFO", "message": message})


def test_the_latest_text_line_of_each_loop_counts(tmp_path: Path) -> None:
    log = tmp_path / "engine-1.log"
    log.write_text(
        "\n".join(
            [
                _text(f"owning {INBOX}[0], {INBOX}[1], {INBOX}[2]"),
                _text(f"owning {EVENTS}[0], {EVENTS}[1], {EVENTS}[2]"),
                _text("Heartbeat failed: something unrelated"),
                _text(f"owning {INBOX}[1]"),  # a rebalance took two partitions away
            ]
        )
    )
    assert owned_in_log(log) == {INBOX: [1], EVENTS: [0, 1, 2]}


def test_a_structured_line_counts_like_a_text_line(tmp_path: Path) -> None:
    log = tmp_path / "engine-1.log"
    log.write_text(_json(f"owning {INBOX}[0], {INBOX}[1]") + "\n" + _json("engine running"))
    assert owned_in_log(log) == {INBOX: [0, 1]}


def test_no_ownership_line_at_all_is_none(tmp_path: Path) -> None:
    log = tmp_path / "engine-1.log"
    assert owned_in_log(log) is None  # not written yet
    log.write_text(_json("engine running") + "\n{not json\n")
    assert owned_in_log(log) is None
    assert logs_agree([log], {INBOX: 2}) is None


def test_logs_of_several_engines_must_cover_each_partition_once(tmp_path: Path) -> None:
    one, two = tmp_path / "engine-1.log", tmp_path / "engine-2.log"
    one.write_text(_text(f"owning {INBOX}[0], {INBOX}[1]"))
    two.write_text(_text(f"owning {INBOX}[1]"))
    assert logs_agree([one, two], {INBOX: 3}) is False
    two.write_text(_text(f"owning {INBOX}[2]"))
    assert logs_agree([one, two], {INBOX: 3}) is True


def test_a_group_is_ready_when_stable_complete_and_assigned_once() -> None:
    full = tuple((INBOX, p) for p in range(3))
    assert covers((*full, ("other", 0)), {INBOX: 3})
    assert group_ready(GroupState("Stable", 2, full), {INBOX: 3}, members=2)
    assert not group_ready(GroupState("PreparingRebalance", 2, full), {INBOX: 3}, members=2)
    assert not group_ready(GroupState("Stable", 1, full), {INBOX: 3}, members=2)
    assert not group_ready(GroupState("Stable", 2, full[:2]), {INBOX: 3}, members=2)
    assert not group_ready(GroupState("Stable", 2, full + full[:1]), {INBOX: 3}, members=2)
    assert not group_ready(None, {INBOX: 3}, members=2)
