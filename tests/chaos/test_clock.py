"""Clock jumps against the real partition worker and a real SQLite store (no broker).

The worker is driven as a unit drives it (``decide``, ``tick``, ``committed``) with a
wall clock the test moves: back by an hour and forward by less
than a step timeout. No timeout fires before its due time, each fires once, and a saga
started while the clock was set back does not time out the moment it is set right.
Also: while the store refuses writes, ``committed`` holds the committed changes until
the store takes them, so a timer already fired is never fired again from stale state.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from sagas.chaos.checks.timers import instance_violations
from sagas.chaos.store import FaultyStore
from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope
from sagas.machine import SagaInstance, SagaState, StepStatus
from sagas.machine.instance import HistoryEntry
from sagas.machine.serialize import instance_from_dict
from sagas.runtime.clock import NonDecreasingClock
from sagas.runtime.partitioning import Partitioning
from sagas.runtime.store import Store
from sagas.runtime.transport.memory import MemoryTransport
from sagas.runtime.transport.records import Consumed, Delivered
from sagas.runtime.units import Decided
from sagas.runtime.worker import SagaWorker
from sagas.testing import Faults, Harness
from services.app import app as examples
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from tests.integration.engine_support import order_placed, two_step_saga
from tests.unit.test_order_fulfilment import order, participants

pytestmark = pytest.mark.chaos

SAGA = two_step_saga("clock_test")
TIMEOUT = timedelta(seconds=20)  # both steps of the saga
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
K = 0  # one partition: every saga lives in unit 0


@dataclass
class WallClock:
    """The system clock as the test sets it."""

    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Rig:
    """A worker on unit 0, driven like a unit drives it."""

    worker: SagaWorker
    store: Store
    wall: WallClock
    codec: Codec
    offsets: itertools.count[int] = field(default_factory=itertools.count)
    inputs: itertools.count[int] = field(default_factory=itertools.count)
    known: dict[str, int] = field(default_factory=dict)
    """Each instance's history length as last committed (a tick's new entries follow)."""

    async def commit(self, decided: Decided) -> None:
        """What the unit does after the transaction committed."""
        delivered = [Delivered(o.topic, K, next(self.offsets)) for o in decided.outgoing]
        await self.worker.committed(K, decided, delivered)
        for instance in changed(decided):
            self.known[instance.saga_id] = instance.history_length

    async def start(self, order_id: str) -> str:
        envelope = Envelope(
            id=str(uuid.uuid4()),
            type=order_placed(order_id).SCHEMA,
            source="/tests",
            time=self.wall.now,
            payload=order_placed(order_id),
        )
        headers, value = self.codec.encode(envelope)
        record = Consumed(
            "orders.events", K, next(self.inputs), order_id.encode(), value, tuple(headers)
        )
        await self.commit(await self.worker.decide(K, [record]))
        return f"order:{order_id}"

    async def tick(self) -> int:
        """Run due timers; how many timer decisions were committed."""
        decided = await self.worker.tick(K)
        if decided is None:
            return 0
        fired = sum(
            1
            for instance in changed(decided)
            for entry in instance.history
            if entry.input == "timer" and entry.seq >= self.known.get(instance.saga_id, 0)
        )
        await self.commit(decided)
        return fired

    async def instance(self, saga_id: str) -> SagaInstance[Any]:
        body = await self.store.get(SAGA.name, saga_id)
        assert body is not None
        return instance_from_dict(SAGA, body)


def changed(decided: Decided) -> list[SagaInstance[Any]]:
    """The instances a decision changed (the worker's context: changes, positions,
    instances, per saga)."""
    context: Any = decided.context
    return [i for _, _, instances in context.changes for i in instances]


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    codec = examples.codec()
    store = await FaultyStore.open(tmp_path / "engine.db")
    wall = WallClock()
    definitions = {SAGA.name: {1: SAGA}}
    worker = SagaWorker(
        definitions,
        codec,
        examples.classes,
        store,
        wall,
        partitioning=Partitioning(definitions, 1),
        reader=MemoryTransport().partition_reader(),  # never read: no unit is taken
        physical=str,
        hold_for=timedelta(seconds=60),
    )
    try:
        yield Rig(worker, store, wall, codec)
    finally:
        await store.close()
        codec.close()


def timeouts(instance: SagaInstance[Any]) -> list[HistoryEntry]:
    return [
        e
        for e in instance.history
        if e.input == "timer" and e.type == "TIMEOUT" and not e.note.startswith("ignored")
    ]


async def test_no_timeout_early_after_jumps_and_each_fires_once(rig: Rig) -> None:
    saga_id = await rig.start("o-1")  # reserve_stock sent at T0, due T0 + 20 s
    rig.wall.now = T0 - timedelta(hours=1)  # back by an hour
    assert await rig.tick() == 0
    rig.wall.now = T0 + TIMEOUT - timedelta(seconds=5)  # forward, 5 s short of due
    assert await rig.tick() == 0
    rig.wall.now = T0 + TIMEOUT - timedelta(milliseconds=1)
    assert await rig.tick() == 0
    rig.wall.now = T0 + TIMEOUT
    assert await rig.tick() == 1
    # Due once: the same time, later, and after another jump back and forth (before
    # the compensation's own timeout, 30 s after it was sent).
    assert await rig.tick() == 0
    rig.wall.now = T0 - timedelta(minutes=10)
    assert await rig.tick() == 0
    rig.wall.now = T0 + TIMEOUT + timedelta(seconds=25)
    assert await rig.tick() == 0
    instance = await rig.instance(saga_id)
    fired = timeouts(instance)
    assert [(e.id, e.at) for e in fired] == [
        (f"reserve_stock:1@{(T0 + TIMEOUT).isoformat()}", T0 + TIMEOUT)
    ]
    # The reservation may have been made (its command was never answered): undone.
    assert instance.state is SagaState.COMPENSATING
    assert instance.step("reserve_stock").status is StepStatus.COMPENSATING
    assert instance_violations(instance, rig.wall.now) == {}


async def test_saga_started_while_clock_is_back_does_not_time_out_when_set_right(
    rig: Rig,
) -> None:
    first = await rig.start("o-1")  # engine time T0
    rig.wall.now = T0 - timedelta(hours=1)  # the wall clock jumps back an hour
    second = await rig.start("o-2")  # engine time stands still at T0
    rig.wall.now = T0 + timedelta(seconds=3)  # set right again
    assert await rig.tick() == 0  # a plain clock would time o-2 out now (due 59 min ago)
    started = (await rig.instance(second)).history[0].at
    assert started == T0
    rig.wall.now = T0 + TIMEOUT
    assert await rig.tick() == 2  # both due now, each once
    assert await rig.tick() == 0
    for saga_id in (first, second):
        instance = await rig.instance(saga_id)
        assert len(timeouts(instance)) == 1
        assert instance_violations(instance, T0 + TIMEOUT) == {}


async def test_a_refused_store_write_is_held_until_the_store_takes_it(rig: Rig) -> None:
    saga_id = await rig.start("o-1")
    rig.wall.now = T0 + TIMEOUT
    batch = await rig.worker.tick(K)
    assert batch is not None
    await rig.store.refuse_writes("readonly")
    writing = asyncio.create_task(rig.commit(batch))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while rig.worker.writer.refused < 2:  # refused, then refused again on retry
        assert loop.time() < deadline, "the store never refused the write"
        assert not writing.done(), "committed returned while the store refused writes"
        await asyncio.sleep(0.02)  # polling interval of a condition with a deadline
    assert (await rig.instance(saga_id)).state is SagaState.RUNNING  # not written yet
    await rig.store.refuse_writes(None)
    await asyncio.wait_for(writing, 10)
    assert rig.worker.writer.episodes == 1
    instance = await rig.instance(saga_id)
    assert instance.state is SagaState.COMPENSATING  # the timed-out step is undone
    assert await rig.tick() == 0  # fired once: the store has it now
    assert len(timeouts(await rig.instance(saga_id))) == 1


async def test_store_full_refuses_growth_and_heals(rig: Rig) -> None:
    await rig.store.refuse_writes("full")
    started = asyncio.create_task(rig.start("o-big-" + "x" * 4000))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while rig.worker.writer.refused < 1:
        assert loop.time() < deadline, "a full store took a write that needed new pages"
        await asyncio.sleep(0.02)  # polling interval of a condition with a deadline
    assert not started.done()
    await rig.store.refuse_writes(None)
    saga_id = await asyncio.wait_for(started, 10)
    assert (await rig.instance(saga_id)).state is SagaState.RUNNING


async def test_the_instance_cache_holds_what_the_store_holds_and_forgets_a_partition(
    rig: Rig,
) -> None:
    saga_id = await rig.start("o-c")
    rig.wall.now = T0 + TIMEOUT  # the step times out: a second committed change
    assert await rig.tick() == 1
    cached = rig.worker.cache.get(SAGA.name, 0, saga_id)
    assert cached is not None
    assert cached == await rig.instance(saga_id)
    assert cached.state is SagaState.COMPENSATING
    rig.worker.give_up(K)  # given up: the next owner's changes are not ours
    assert rig.worker.cache.get(SAGA.name, 0, saga_id) is None
    assert len(rig.worker.cache) == 0


def test_non_decreasing_clock_stands_still_then_follows() -> None:
    wall = WallClock()
    clock = NonDecreasingClock(wall)
    assert clock() == T0
    wall.now = T0 - timedelta(days=1)
    assert clock() == T0
    wall.now = T0 + timedelta(seconds=1)
    assert clock() == T0 + timedelta(seconds=1)


def test_the_timer_check_finds_an_early_and_a_double_timeout() -> None:
    due = T0 + TIMEOUT
    timer_id = f"reserve_stock:1@{due.isoformat()}"
    sent = HistoryEntry(
        seq=0,
        at=T0,
        input="message",
        type="orders.OrderPlaced",
        id="m",
        note="started",
        sent=("order:o-1:reserve_stock:1",),
    )
    early = HistoryEntry(
        seq=1,
        at=due - timedelta(seconds=1),
        input="timer",
        type="TIMEOUT",
        id=timer_id,
        note="compensating",
    )
    again = HistoryEntry(
        seq=2,
        at=due + timedelta(seconds=1),
        input="timer",
        type="TIMEOUT",
        id=f"reserve_stock:1@{(due + timedelta(seconds=1)).isoformat()}",
        note="compensating",
    )
    base = SagaInstance(
        saga=SAGA.name,
        saga_id="order:o-1",
        version=1,
        state=SagaState.COMPENSATED,
        data=None,
        steps=(),
        created=T0,
        updated=T0,
        history=(sent, early, again),
    )
    found = instance_violations(base, due)
    assert len(found["premature_timer"]) == 1
    assert "fired 2 times for 1 send(s)" in found["timer_fired_twice"][0]


@pytest.mark.parametrize("seed", range(20))
def test_the_timer_check_passes_real_timeouts_retries_and_late_replies(seed: int) -> None:
    # Replies slower than the 30 s step timeouts, lost or duplicated: timeouts, resends
    # of the same attempt and compensations, all legal.
    slow = Faults(
        latency=(timedelta(milliseconds=1), timedelta(seconds=45)),
        duplicate=0.3,
        drop=0.3,
        seed=seed,
    )
    harness = Harness(ORDER_FULFILMENT, participants(), faults=slow)
    saga_id = harness.start(order(f"o-{seed}"))
    harness.run()
    instance = harness.instance(saga_id)
    assert instance.state.ended
    assert instance_violations(instance, harness.now) == {}
