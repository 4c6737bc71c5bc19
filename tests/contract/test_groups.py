"""Consumer groups: partitions spread over the members and handed over on join and
leave, listeners first; pause, resume, seek and lag of one member."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest

from sagas.runtime.errors import NotAssigned
from sagas.runtime.transport.base import GroupConsumer, Transport
from sagas.runtime.transport.records import TP, OutRecord
from tests.contract.support import (
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
