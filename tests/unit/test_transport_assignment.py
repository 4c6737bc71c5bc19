"""The engines' assignment rule (`sagas.runtime.transport.assignment`) on its own:
whole units to the members that read every topic, notes for the others."""

from __future__ import annotations

import logging

import pytest

from sagas.runtime.errors import GroupMismatch
from sagas.runtime.transport.assignment import Dealt, Heeding, Mixed, Standby, deal, decode, encode
from sagas.runtime.transport.records import TP

PARTITIONS = {"in": range(3), "events": range(3), "more": range(3)}


def test_members_of_one_subscription_get_whole_units_round_robin() -> None:
    dealt = deal({"m2": ["in", "events"], "m1": ["events", "in"]}, PARTITIONS)
    assert dealt == {
        "m1": Dealt(frozenset({TP("in", 0), TP("events", 0), TP("in", 2), TP("events", 2)})),
        "m2": Dealt(frozenset({TP("in", 1), TP("events", 1)})),
    }


def test_a_narrower_member_stands_by() -> None:
    dealt = deal({"m1": ["in"], "m2": ["in", "more"], "m3": ["in", "more"]}, PARTITIONS)
    assert dealt["m1"] == Dealt(frozenset(), Standby(frozenset({"more"})))
    assert dealt["m2"].tps == {TP(t, k) for t in ("in", "more") for k in (0, 2)}
    assert dealt["m3"].tps == {TP("in", 1), TP("more", 1)}
    assert dealt["m2"].note is dealt["m3"].note is None


def test_a_group_where_none_reads_every_topic_is_mixed() -> None:
    dealt = deal({"m1": ["in", "events"], "m2": ["in", "more"]}, PARTITIONS)
    assert dealt == {
        "m1": Dealt(frozenset(), Mixed(frozenset({"more"}))),
        "m2": Dealt(frozenset(), Mixed(frozenset({"events"}))),
    }


def test_a_topic_not_created_yet_counts_for_the_rule() -> None:
    dealt = deal({"m1": ["in"], "m2": ["in", "later"]}, PARTITIONS)
    assert dealt["m1"].note == Standby(frozenset({"later"}))
    assert dealt["m2"] == Dealt(frozenset(TP("in", k) for k in range(3)))


def test_notes_travel_as_user_data() -> None:
    standby = Standby(frozenset({"p.orders.events", "p.sagas.x.inbox"}))
    assert encode(standby) == b"standby:p.orders.events,p.sagas.x.inbox"
    assert decode(encode(standby)) == standby
    mixed = Mixed(frozenset({"p.a"}))
    assert decode(encode(mixed), lambda t: t.removeprefix("p.")) == Mixed(frozenset({"a"}))
    assert encode(None) == b""
    assert decode(b"") is None
    assert decode(b"a-later-note:x") is None  # a newer release's note: ignored


def test_heeding_warns_once_a_generation_and_a_mixed_group_stays_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    heeding = Heeding("g")
    heeding.heed()
    heeding.received(Standby(frozenset({"more"})))
    heeding.heed()
    heeding.heed()
    assert len(caplog.records) == 1
    heeding.received(Standby(frozenset({"more"})))
    heeding.heed()
    assert len(caplog.records) == 2
    heeding.received(None)
    heeding.heed()
    heeding.received(Mixed(frozenset({"b", "a"})))
    heeding.received(None)  # a later generation does not undo it
    with pytest.raises(GroupMismatch, match=r"^engines of group g .*does not read a, b\)"):
        heeding.heed()
    assert len(caplog.records) == 2
