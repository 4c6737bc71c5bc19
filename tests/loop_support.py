"""A relay on the engine's loop: every record of a unit copied to another topic.

The same loop (units, transactions, rebalances, in-doubt handling) as the engine's,
without saga logic, so its guarantees can be checked on either transport.
"""

from __future__ import annotations

import asyncio
from collections.abc import Hashable, Sequence
from collections.abc import Set as AbstractSet
from datetime import timedelta

from sagas.runtime.loop import EngineLoop
from sagas.runtime.transport.base import Transport
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord
from sagas.runtime.units import Decided, Delivery, UnitConfig, UnitWorker


class Relay:
    """`UnitWorker` copying every record to ``out`` (its partition); counts commits."""

    def __init__(self, out: str) -> None:
        self.out = out
        self.taken: list[int] = []
        self.has_units = asyncio.Event()
        self.committed_records = 0
        self.given_up: list[int] = []

    async def take(self, k: int) -> None:
        self.taken.append(k)
        self.has_units.set()

    def give_up(self, k: int) -> None:
        self.given_up.append(k)

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        out = [OutRecord(self.out, r.value, key=r.key, partition=0) for r in records]
        return Decided(outgoing=out, context=len(records))

    def dead_letter(self, k: int, record: Consumed, error: BaseException) -> Decided:
        raise AssertionError(f"no record should fail: {error!r}")

    async def tick(self, k: int) -> Decided | None:
        return None

    async def committed(self, k: int, decided: Decided, delivered: Sequence[Delivered]) -> None:
        assert isinstance(decided.context, int)
        self.committed_records += decided.context


def relay_loop(
    transport: Transport,
    group: str,
    topics: Sequence[str],
    worker: UnitWorker,
    transactional_prefix: str,
    session_timeout: timedelta = timedelta(seconds=6),
    commit_timeout: timedelta = timedelta(seconds=15),
    max_batch: int = 500,
    max_in_flight: int = 1,
    idle_tick: timedelta = timedelta(milliseconds=100),
    delivery: Delivery = Delivery.TRANSACTIONAL,
) -> EngineLoop:
    """The engine's loop driving ``worker`` (any `UnitWorker`) over ``topics``."""
    config = UnitConfig(
        transport=transport,
        worker=worker,
        group_id=group,
        transactional_prefix=transactional_prefix,
        max_batch=max_batch,
        commit_timeout=commit_timeout,
        heartbeat=session_timeout / 5,
        idle_tick=idle_tick,
        max_in_flight=max_in_flight,
        delivery=delivery,
    )
    return EngineLoop(config, topics, session_timeout)


def defer_busy(
    records: Sequence[Consumed], busy: AbstractSet[Hashable]
) -> tuple[list[Consumed], list[Consumed]]:
    """``records`` split as a `UnitWorker` keyed by record key must: a record whose key is
    ``busy`` is deferred with every later record of its partition."""
    kept: list[Consumed] = []
    deferred: list[Consumed] = []
    waiting: set[TP] = set()
    for r in records:
        if r.tp in waiting or r.key in busy:
            waiting.add(r.tp)
            deferred.append(r)
        else:
            kept.append(r)
    return kept, deferred
