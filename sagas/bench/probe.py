"""The hop probe: what one hop costs on this broker, with one message in flight.

A hop is what a saga's message goes through at each process on its path: consumed,
then a new record produced. Two players in the bench process bounce one record between
two single-partition topics (A consumes ``a`` and produces to ``b``, B the reverse),
each with its own consumer and producer; one record is in flight at any time, so
nothing queues. A hop runs from one consume to the next (the other player's), on one
monotonic clock: the producer's send and acknowledgement or commit, and the delivery to
the next consumer. The record is a real encoded ``OrderPlaced`` (realistic size).

Two kinds, as on a saga's path:

- ``transactional`` (the engine's and the router's hops): ``read_committed`` consumer;
  per record one transaction holding the produced record and the consumed offset
  (``send_offsets_to_transaction``), committed; the next consumer gets the record once
  the commit markers are written.
- ``idempotent`` (the participants' hops): idempotent producer (``acks=all``) and
  ``read_uncommitted`` consumer; the record is sent and acknowledged, then the consumed
  offset is committed, as the participant runner does.

Both producers send at once (``linger_ms=0``: with one record there is nothing to wait
for); the transactional one retries after 10 ms (``retry_backoff_ms``; the broker
refuses the first ``AddPartitionsToTxn`` after a commit while it writes the markers).
Consumers are assigned their partition (no group join on the path) and fetch with a
100 ms long poll, as the engine's and the participants' do.

The produce requests Kafka refused and aiokafka retried are counted (``retries``). On
the dev broker (Kafka 4.4) the transactional hops see ``NotEnoughReplicasError`` on a
single-replica topic; our reading is that this is the broker's verification of the
partition's transaction (KIP-890) answered to an older produce version, not replication.
Each costs at least one retry backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from sagas import Saga, Step
from sagas.bench.harness import BenchError
from sagas.bench.latency import quantile
from sagas.bench.load import order_record
from sagas.bench.topics import create_topics
from services.app import app as examples

Kind = Literal["transactional", "idempotent"]
KINDS: tuple[Kind, ...] = ("transactional", "idempotent")
POLL_MS = 100
RETRY_BACKOFF_MS = 10


@dataclass(frozen=True)
class HopStats:
    """Hop times of one kind, in milliseconds, over ``hops`` hops after the warm-up."""

    kind: str
    hops: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    retries: int = 0
    """Produce requests refused and retried during the whole probe (warm-up included)."""


def stats(kind: str, stamps: Sequence[float], retries: int = 0) -> HopStats:
    """Hop times from consecutive consume instants (monotonic seconds)."""
    hops = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
    if not hops:
        raise BenchError(f"probe {kind}: no hop measured")
    return HopStats(
        kind=kind,
        hops=len(hops),
        p50_ms=quantile(hops, 0.50),
        p99_ms=quantile(hops, 0.99),
        mean_ms=sum(hops) / len(hops),
        max_ms=max(hops),
        retries=retries,
    )


class _Player:
    """Consumes ``source`` (partition 0) and produces each record to ``target``."""

    def __init__(self, bootstrap: str, kind: Kind, source: str, target: str, group: str) -> None:
        self.kind, self.source, self.target, self.group = kind, source, target, group
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed" if kind == "transactional" else "read_uncommitted",
            fetch_max_wait_ms=POLL_MS,
        )
        options: dict[str, Any] = (
            {"transactional_id": group, "retry_backoff_ms": RETRY_BACKOFF_MS}
            if kind == "transactional"
            else {"enable_idempotence": True, "acks": "all"}
        )
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0, **options)

    async def start(self) -> None:
        await self.producer.start()
        await self.consumer.start()
        self.consumer.assign([TopicPartition(self.source, 0)])

    async def stop(self) -> None:
        await self.consumer.stop()
        await self.producer.stop()

    async def run(self, stamps: list[float], total: int, done: asyncio.Event) -> None:
        """Stamp every record consumed and pass it on, until ``total`` stamps."""
        while not done.is_set():
            data = await self.consumer.getmany(timeout_ms=POLL_MS)
            for tp, records in data.items():
                for record in records:
                    stamps.append(time.monotonic())
                    if len(stamps) >= total:
                        done.set()
                        return
                    await self._forward(tp, record)

    async def _forward(self, tp: TopicPartition, record: ConsumerRecord[Any, Any]) -> None:
        headers = list(record.headers or ())
        if self.kind == "transactional":
            async with self.producer.transaction():
                await self.producer.send(self.target, record.value, record.key, headers=headers)
                await self.producer.send_offsets_to_transaction({tp: record.offset + 1}, self.group)
        else:
            await self.producer.send_and_wait(
                self.target, record.value, record.key, headers=headers
            )
            await self.consumer.commit({tp: record.offset + 1})


async def probe(
    bootstrap: str,
    prefix: str,
    kind: Kind,
    *,
    hops: int = 200,
    warmup: int = 20,
    deadline_s: float = 120.0,
) -> HopStats:
    """``hops`` hops of ``kind`` (after ``warmup`` hops) on fresh topics of ``prefix``."""
    a, b = f"{prefix}probe.{kind}.a", f"{prefix}probe.{kind}.b"
    await create_topics(bootstrap, {a: 1, b: 1})
    players = [
        _Player(bootstrap, kind, a, b, f"{prefix}probe.{kind}.A"),
        _Player(bootstrap, kind, b, a, f"{prefix}probe.{kind}.B"),
    ]
    stamps: list[float] = []
    done = asyncio.Event()
    with _counting_retries() as retries:
        for player in players:
            await player.start()
        try:
            await _serve_first(bootstrap, a)
            async with asyncio.timeout(deadline_s):
                async with asyncio.TaskGroup() as tg:
                    for player in players:
                        tg.create_task(player.run(stamps, warmup + hops + 1, done))
        except TimeoutError as exc:
            raise BenchError(f"probe {kind}: {len(stamps)} hops in {deadline_s:.0f}s") from exc
        finally:
            for player in players:
                await player.stop()
    return stats(kind, stamps[warmup:], len(retries))


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def _counting_retries() -> Iterator[list[logging.LogRecord]]:
    """Collect (instead of printing) aiokafka's "retrying" warnings of the producers."""
    handler = _Collect()
    seen = handler.records
    logger = logging.getLogger("aiokafka.producer.sender")
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield seen
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


async def _serve_first(bootstrap: str, topic: str) -> None:
    """The record that will bounce: one encoded ``OrderPlaced``."""
    with examples.codec() as codec:
        headers, value = order_record(codec, "probe")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, b"probe", headers=headers)
    finally:
        await producer.stop()


@dataclass(frozen=True)
class SagaHops:
    """The hops on a saga's happy path, by kind (see `saga_hops`)."""

    transactional: int
    idempotent: int

    @property
    def total(self) -> int:
        return self.transactional + self.idempotent

    def floor_ms(self, transactional: HopStats, idempotent: HopStats) -> float:
        """The path's floor: each hop at its kind's median."""
        return self.transactional * transactional.p50_ms + self.idempotent * idempotent.p50_ms


def saga_hops(saga: Saga[Any], routed: bool) -> SagaHops:
    """Count the consume-then-produce hops from the start event to the end event.

    Per stage with commands (a step, or a parallel group: its branches run side by
    side), one participant hop (command consumed, reply produced: idempotent) and one
    engine hop before it (start or previous reply consumed, command produced in a
    transaction); one more engine hop turns the last reply into the end event. With
    ``routed`` (the start event goes through the router onto the saga's inbox first,
    as the message count shows) the router's transaction is one more hop. The
    generator's send and the observer's read are the path's two ends, not hops.
    """
    stages = sum(1 for stage in saga.stages if any(isinstance(s, Step) for s in stage))
    return SagaHops(transactional=int(routed) + stages + 1, idempotent=stages)
