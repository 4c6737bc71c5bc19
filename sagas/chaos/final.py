"""The final state of every saga, read from the changelog topics after quiescence.

Kafka is the source of truth: every committed changelog record of every saga id is
read (``read_committed``: a fenced or aborted transaction never shows), from every
partition, whichever engine wrote it. Each record is kept as a small `Snapshot` (saga
state, step statuses, history length) so the checks can compare consecutive states of
a saga; only the latest record is decoded into a `SagaInstance`.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from sagas.contracts import topics
from sagas.definition import Saga
from sagas.machine import SagaInstance, instance_from_dict
from sagas.runtime import changelog


@dataclass(frozen=True)
class Snapshot:
    """One committed state of a saga, as its changelog record holds it.

    Attributes:
        offset: of the record in its changelog partition.
        state: the saga state.
        steps: (step name, status) in definition order.
        history: the number of history entries (moved out ones included).
        completed: the steps that succeeded, in order of completion.
        operator: how many of the entries the record holds are operator actions.
    """

    offset: int
    state: str
    steps: tuple[tuple[str, str], ...]
    history: int
    completed: tuple[str, ...]
    operator: int


@dataclass
class SagaRecords:
    """Every committed changelog state of one saga, oldest first, and the latest body."""

    saga: str
    snapshots: list[Snapshot] = field(default_factory=list)
    body: dict[str, Any] | None = None


def snapshot(offset: int, body: dict[str, Any]) -> Snapshot:
    """The parts of an instance body that the transition checks compare."""
    history = body.get("history") or []
    return Snapshot(
        offset=offset,
        state=str(body["state"]),
        steps=tuple((str(s["name"]), str(s["status"])) for s in body["steps"]),
        # The whole history's length: an instance keeps its latest entries only
        # (HISTORY_WINDOW), the engine moves older ones to the history topic.
        history=int(body.get("history_offset") or 0) + len(history),
        completed=tuple(str(c) for c in body.get("completed") or ()),
        operator=sum(1 for e in history if e.get("input") == "operator"),
    )


async def read_changelogs(
    bootstrap_servers: str,
    prefix: str,
    saga_names: list[str],
    partitions: int,
    deadline_s: float = 300,
) -> dict[str, SagaRecords]:
    """By saga id, every committed changelog record of the named sagas (to the end).

    ``partitions``: of each changelog (the engines' ``SAGAS_PARTITIONS``).

    Raises:
        TimeoutError: the end was not reached within ``deadline_s``.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    found: dict[str, SagaRecords] = {}
    try:
        # Co-partitioned with the inboxes: the engines refuse any other count.
        saga_of = {
            TopicPartition(topics.physical(prefix, topics.changelog(name)), p): name
            for name in saga_names
            for p in range(partitions)
        }
        parts = list(saga_of)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        async with asyncio.timeout(deadline_s):
            await _read(consumer, parts, saga_of, found)
    finally:
        await consumer.stop()
    return found


async def _read(
    consumer: AIOKafkaConsumer,
    parts: list[TopicPartition],
    saga_of: dict[TopicPartition, str],
    found: dict[str, SagaRecords],
) -> None:
    ends = await consumer.end_offsets(parts)
    while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
        batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
        for tp, records in batch.items():
            for record in records:
                if record.key is None or record.key.startswith(changelog.HELD_PREFIX):
                    continue
                if record.value is None:
                    continue
                body = json.loads(record.value)["body"]
                saga_id = record.key.decode()
                entry = found.setdefault(saga_id, SagaRecords(saga_of[tp]))
                entry.snapshots.append(snapshot(record.offset, body))
                entry.body = body


def final_instances(
    records: dict[str, SagaRecords], definitions: tuple[Saga[Any], ...]
) -> list[SagaInstance[Any]]:
    """The latest state of every saga, decoded with its definition."""
    by_version = {(d.name, d.version): d for d in definitions}
    instances: list[SagaInstance[Any]] = []
    for entry in records.values():
        body = entry.body
        if body is None:
            continue
        definition = by_version[(str(body["saga"]), int(body["version"]))]
        instances.append(instance_from_dict(definition, body))
    return instances
