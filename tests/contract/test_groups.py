"""Consumer groups: partitions spread over the members and handed over on join and
leave, listeners first; the engine's rule for members of different subscriptions (a
narrower one stands by, a mixed group stops); pause, resume, seek and lag of one
member."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta

import pytest

from sagas.runtime.errors import GroupMismatch, NotAssigned
from sagas.runtime.transport.base import GroupConsumer, Transport
from sagas.runtime.transport.records import TP, OutRecord
from tests.contract.support import (
    DEADLINE,
    POLL_WAIT,
    committed_transaction,
    consumer,
    end_is,
    new_topic,
    placed,
    poll_until,
    started,
    unique,
    write,
)

Event = tuple[str, str, frozenset[TP]]


class Recorder:
    """Writes each listener call into a log shared by the members."""

    def __init__(self, name: str, events: list[Event]) -> None:
        self.name = name
        self.events = events

    async def revoked(self, tps: Sequence[TP]) -> None:
        self.events.append((self.name, "revoked", frozenset(tps)))

    async def assigned(self, tps: Sequence[TP]) -> None:
        self.events.append((self.name, "assigned", frozenset(tps)))


def _split(a: GroupConsumer, b: GroupConsumer, every: frozenset[TP]) -> bool:
    mine, theirs = a.assignment(), b.assignment()
    return len(mine) == len(theirs) == len(every) // 2 and mine | theirs == every


async def test_members_share_the_partitions_and_hand_them_over(transport: Transport) -> None:
    topic = await new_topic(transport, partitions=4)
    every = frozenset(TP(topic, p) for p in range(4))
    group = unique("group")
    events: list[Event] = []
    a = consumer(transport, group, [topic], Recorder("a", events))
    b = consumer(transport, group, [topic], Recorder("b", events))
    await a.start()
    try:
        await poll_until([a], lambda _: a.assignment() == every, "a holds every partition")
        await b.start()
        try:
            await poll_until([a, b], lambda _: _split(a, b, every), "a and b share them")
        finally:
            await b.stop()
            events.append(("b", "stopped", frozenset()))
        await poll_until([a], lambda _: a.assignment() == every, "a takes them back")
    finally:
        await a.stop()

    held: dict[str, frozenset[TP]] = {"a": frozenset(), "b": frozenset()}
    calls: dict[str, list[str]] = {"a": [], "b": []}
    for name, call, tps in events:
        calls[name].append(call)
        others = frozenset().union(*(h for n, h in held.items() if n != name))
        if call == "assigned":
            assert not tps & others, f"{name} got {sorted(tps)} while another member held them"
            held[name] = tps
        else:
            # Eager rebalancing: a member gives up its whole assignment (or nothing,
            # when it joins; and a member that stops tells its listener nothing).
            assert call == "stopped" or tps == held[name], (name, call, tps, held[name])
            held[name] = frozenset()
    assert calls["b"][:2] == ["revoked", "assigned"]
    assert calls["b"][-1] == "stopped"
    assert calls["a"][0] == "revoked"
    assert all(x != y for x, y in zip(calls["a"], calls["a"][1:], strict=False))
    assert held["a"] == every


def _standby_warnings(caplog: pytest.LogCaptureFixture, group: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING
        and r.getMessage().startswith(f"standing by in group {group}:")
    ]


async def test_a_narrower_member_stands_by_while_a_wider_one_reads_everything(
    transport: Transport, caplog: pytest.LogCaptureFixture
) -> None:
    shared = await new_topic(transport, partitions=2)
    more = await new_topic(transport, partitions=2)
    own = frozenset(TP(shared, p) for p in range(2))
    everything = own | {TP(more, p) for p in range(2)}
    group = unique("group")
    narrow = consumer(transport, group, [shared])
    wide = consumer(transport, group, [shared, more])
    caplog.set_level(logging.WARNING)
    await narrow.start()
    try:
        await poll_until([narrow], lambda _: narrow.assignment() == own, "narrow alone reads")
        await wide.start()
        try:

            def wide_reads_everything(_: object) -> bool:
                return wide.assignment() == everything and not narrow.assignment()

            await poll_until([narrow, wide], wide_reads_everything, "wide reads everything")
            # An event on a topic both read goes to the member that runs every saga.
            await committed_transaction(
                transport,
                [OutRecord(tp.topic, str(tp).encode(), partition=tp.partition) for tp in own],
            )
            got = await poll_until([narrow, wide], lambda got: len(got[1]) >= 2, "both events")
            assert got[0] == []
            assert sorted(r.partition for r in got[1]) == [0, 1]
            warnings = _standby_warnings(caplog, group)
            assert warnings, "the narrower member said it stands by"
            assert f"it also reads {more})" in warnings[0]
            assert "another engine of the group runs more sagas" in warnings[0]
        finally:
            await wide.stop()
        await poll_until([narrow], lambda _: narrow.assignment() == own, "narrow reads again")
    finally:
        await narrow.stop()


async def _mismatches(members: Sequence[GroupConsumer]) -> list[GroupMismatch]:
    """Poll every member at once until each one's poll raised `GroupMismatch`."""

    async def mismatch(member: GroupConsumer) -> GroupMismatch:
        while True:
            try:
                await member.poll(POLL_WAIT, 100)
            except GroupMismatch as exc:
                return exc

    try:
        async with asyncio.timeout(DEADLINE):
            return list(await asyncio.gather(*(mismatch(m) for m in members)))
    except TimeoutError:
        raise AssertionError(f"not within {DEADLINE}s: GroupMismatch from every member") from None


async def test_members_of_which_none_reads_every_topic_stop_with_group_mismatch(
    transport: Transport,
) -> None:
    first = await new_topic(transport, partitions=2)
    second = await new_topic(transport, partitions=2)
    group = unique("group")
    running = consumer(transport, group, [first])
    joining = consumer(transport, group, [second])
    await running.start()
    try:
        mine = frozenset(TP(first, p) for p in range(2))
        await poll_until([running], lambda _: running.assignment() == mine, "alone, it reads")
        await joining.start()
        try:
            errors = await _mismatches([running, joining])
            assert running.assignment() == joining.assignment() == frozenset()
            with pytest.raises(GroupMismatch):  # the group was mixed: every later poll too
                await running.poll(POLL_WAIT, 100)
        finally:
            await joining.stop()
    finally:
        await running.stop()
    for error, missing in zip(errors, (second, first), strict=True):
        message = str(error)
        assert message.startswith(
            f"engines of group {group} subscribe to different topics and none covers them all"
        )
        assert f"(this one does not read {missing})" in message
        assert "give each set of sagas its own SAGAS_ENGINE_GROUP" in message
        assert message.endswith("and never run one saga in two groups")


async def test_pause_resume_seek_and_lag(transport: Transport) -> None:
    topic = await new_topic(transport)
    tp = TP(topic, 0)
    await committed_transaction(
        transport, [OutRecord(topic, b"%d" % i, partition=0) for i in range(3)]
    )
    member = consumer(transport, unique("group"), [topic])
    await member.start()
    reader = transport.partition_reader()
    try:
        [got] = await poll_until([member], lambda got: len(got[0]) >= 3, "three records")
        assert placed(got) == [(0, b"0"), (1, b"1"), (2, b"2")]  # marker 3
        assert member.lag(tp, 4) == 0
        assert member.lag(tp, 1) == 3

        member.pause([tp])
        await committed_transaction(transport, [OutRecord(topic, b"3", partition=0)])  # 4, marker 5
        await end_is(reader, tp, 6)
        assert await member.poll(timedelta(milliseconds=300), 100) == {}
        member.resume([tp])
        [more] = await poll_until([member], lambda got: bool(got[0]), "the record after resume")
        assert placed(more) == [(4, b"3")]

        member.seek(tp, 1)
        [again] = await poll_until([member], lambda got: len(got[0]) >= 3, "from offset 1 again")
        assert placed(again) == [(1, b"1"), (2, b"2"), (4, b"3")]
        with pytest.raises(NotAssigned):
            member.seek(TP(topic, 1), 0)
    finally:
        await member.stop()
        await reader.close()


async def test_lag_counts_up_to_the_last_stable_offset(transport: Transport) -> None:
    topic = await new_topic(transport)
    tp = TP(topic, 0)
    pending = await started(transport)
    await pending.begin()
    assert (await write(pending, OutRecord(topic, b"open", partition=0))).offset == 0
    member = consumer(transport, unique("group"), [topic])
    await member.start()
    try:

        def known(_: object) -> bool:
            return tp in member.assignment() and member.lag(tp, 0) is not None

        await poll_until([member], known, "the lag of the partition")
        assert member.lag(tp, 0) == 0  # the open transaction's record is not readable
        assert member.lag(TP(unique("other"), 0), 0) is None  # not assigned: unknown
        await pending.commit()  # marker 1
        [got] = await poll_until([member], lambda got: bool(got[0]), "the committed record")
        assert placed(got) == [(0, b"open")]
        assert (member.lag(tp, 0), member.lag(tp, 2)) == (2, 0)
    finally:
        await member.stop()
        await pending.stop()
