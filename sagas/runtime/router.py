"""The router: forwards start and choreography events to the saga inboxes.

It consumes the domain event topics the definitions listen to and, for each event a
saga starts on or waits for, copies the record (bytes untouched, ``saga_id`` header
set) to ``sagas.<saga>.inbox`` keyed by saga id, in the same transaction as the
consumed offsets. Events no saga cares about are passed over; undecodable ones go to
``sagas.router.dlq``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata

from sagas.contracts.codec import Codec
from sagas.contracts.errors import ContractError
from sagas.definition import Await, Saga
from sagas.runtime import topics
from sagas.runtime.loop import Batch, Outgoing
from sagas.runtime.worker import dead_letter
from sagas.telemetry.engine import EngineTelemetry

DEAD_LETTERS = "sagas.router.dlq"


def routed_types(definition: Saga[Any]) -> set[str]:
    """The event types that reach ``definition`` through the router."""
    types = {start.event.SCHEMA for start in definition.starts}
    for leaf in definition.leaves:
        if isinstance(leaf, Await):
            types.update(on.type.SCHEMA for on in (*leaf.success, *leaf.failure))
    return types


def event_topics(definitions: Sequence[Saga[Any]]) -> list[str]:
    """``<domain>.events`` for every start or choreography event of the definitions."""
    return sorted({topics.events(t.split(".", 1)[0]) for d in definitions for t in routed_types(d)})


class Router:
    """`PartitionHandler` for the domain event topics."""

    def __init__(
        self,
        definitions: Sequence[Saga[Any]],
        codec: Codec,
        telemetry: EngineTelemetry | None = None,
    ) -> None:
        self._definitions = list(definitions)
        self._codec = codec
        self._telemetry = telemetry
        self.forwarded = 0

    async def assigned(self, tp: TopicPartition) -> None:
        return None

    async def revoked(self, tp: TopicPartition) -> None:
        return None

    async def tick(self, tp: TopicPartition) -> Batch | None:
        return None

    async def committed(
        self, tp: TopicPartition, batch: Batch, sent: Sequence[RecordMetadata]
    ) -> None:
        self.forwarded += int(batch.context or 0)
        if self._telemetry is not None:
            dead = sum(1 for o in batch.outgoing if o.topic == DEAD_LETTERS)
            if dead:
                self._telemetry.dead_lettered(DEAD_LETTERS, "router", dead)

    async def dead_letter(
        self, tp: TopicPartition, record: ConsumerRecord[Any, Any], error: BaseException
    ) -> Batch:
        return Batch(
            [
                dead_letter(
                    record, DEAD_LETTERS, "processing-error", repr(error), type(error).__name__
                )
            ]
        )

    async def process(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> Batch:
        # The router forwards the record's bytes and headers untouched (traceparent
        # included): the start event's span stays the parent of the saga span.
        if self._telemetry is not None:
            self._telemetry.consumed(records)
        out: list[Outgoing] = []
        forwarded = 0
        for record in records:
            try:
                envelope = self._codec.decode(
                    record.headers or [],
                    record.value,
                    topic=record.topic,
                    partition=record.partition,
                    offset=record.offset,
                )
            except ContractError as exc:
                out.append(
                    dead_letter(record, DEAD_LETTERS, exc.reason, exc.message, type(exc).__name__)
                )
                continue
            for definition in self._definitions:
                saga_id = definition.route(envelope)
                if saga_id is None:
                    continue
                headers = [(k, v) for k, v in record.headers or () if k != "saga_id"]
                headers.append(("saga_id", saga_id.encode()))
                out.append(
                    Outgoing(definition.inbox, record.value, key=saga_id.encode(), headers=headers)
                )
                forwarded += 1
        return Batch(out, forwarded)
