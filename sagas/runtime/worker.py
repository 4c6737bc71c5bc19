"""The partition worker: decides on every record of a saga inbox partition.

For each batch it decodes the records, loads the instances they concern, runs the pure
`decide`, and returns everything to produce in the batch's transaction: the decided
commands and events, one changelog record per changed instance, held-message records
and dead letters. The SQLite store is written only after the transaction commits.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.structs import RecordMetadata

from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.errors import ContractError
from sagas.contracts.messages.sagas import OperatorAction as OperatorActionRecord
from sagas.contracts.record import Envelope
from sagas.definition import Saga
from sagas.errors import SagasError
from sagas.machine import Outgoing as CoreOutgoing
from sagas.machine import OutgoingKind, SagaInstance, TimerFired, decide
from sagas.machine.serialize import instance_from_dict, instance_to_dict
from sagas.runtime import changelog, deadletter, topics, wire
from sagas.runtime.clock import NonDecreasingClock
from sagas.runtime.instance_cache import InstanceCache
from sagas.runtime.loop import Batch, Outgoing
from sagas.runtime.store import Changes, Held, Store, StoredInstance
from sagas.runtime.store_writer import StoreWriter
from sagas.telemetry.engine import EngineTelemetry, Pending
from sagas.telemetry.logs import saga_scope

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def iso(moment: datetime) -> str:
    """Sortable UTC text: the store compares due times as strings."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dead_letter(
    record: ConsumerRecord[Any, Any], topic: str, reason: str, message: str, error: str
) -> Outgoing:
    """The original record, bytes untouched, with the reason in headers (shortened only
    when it would be too large to produce: `sagas.runtime.deadletter.fit`)."""
    headers = [
        *list(record.headers or ()),
        ("dlq_reason", reason.encode()),
        ("dlq_error", error.encode()),
        ("dlq_message", message.encode()),
        ("dlq_topic", record.topic.encode()),
        ("dlq_partition", str(record.partition).encode()),
        ("dlq_offset", str(record.offset).encode()),
    ]
    value, headers = deadletter.fit(record.key, record.value, headers)  # Kafka must take it
    return Outgoing(topic, value, key=record.key, headers=headers)


def kept_dead_letter(out: CoreOutgoing, codec: Codec, saga: str, partition: int) -> Outgoing:
    """A message an instance kept and dropped (`OutgoingKind.DEAD_LETTER`: an early
    event), as a dead letter of inbox ``partition``, with the same ``dlq_*`` headers as
    `dead_letter`.

    The record it arrived in is gone (the instance kept the decoded envelope), so it is
    encoded again with the codec: the same headers and payload, possibly under another
    schema id. Its inbox offset is not known: ``dlq_offset`` is ``-1``.
    """
    assert out.envelope is not None  # set on every dead letter
    assert out.reason is not None
    headers, value = codec.encode(out.envelope)
    record: ConsumerRecord[Any, Any] = ConsumerRecord(
        topics.inbox(saga),
        partition,
        -1,
        0,
        0,
        out.key.encode(),
        value,
        None,
        0,
        0,
        tuple(headers),
    )
    message = f"{out.envelope.type} {out.envelope.id} kept by saga {out.saga_id}: {out.reason}"
    return dead_letter(record, topics.dead_letters(saga), out.reason, message, "EarlyEventDropped")


@dataclass
class _Work:
    """What a batch has decided so far, for one partition of one saga."""

    saga: str
    partition: int
    instances: dict[str, SagaInstance[Any]] = field(default_factory=dict)
    before: dict[str, int] = field(default_factory=dict)  # history length when loaded
    outgoing: list[Outgoing] = field(default_factory=list)
    held: dict[str, Held] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)  # looked up in the store, not there
    none_held: set[str] = field(default_factory=set)  # absent, and no held messages stored
    trace: Pending | None = None  # spans and metrics to report once committed


@dataclass
class _Decided:
    """A batch's context: the store changes and the instances they hold."""

    changes: Changes
    instances: list[SagaInstance[Any]] = field(default_factory=list)


class SagaWorker:
    """`PartitionHandler` for the inboxes of the given definitions.

    Args:
        definitions: by saga name, by version; the highest version starts new sagas.
        codec: decodes inputs and encodes outputs.
        store: the process's SQLite store.
        clock: the wall clock (injectable: tests and chaos jump it); `decide` is given
            it through a `NonDecreasingClock`, so a backward jump makes no timer early.
        hold_for: how long a message for a saga not started yet is kept.
        bootstrap_servers, client_options: for changelog catch-up.
        telemetry: spans and metrics (None when telemetry is off: no cost at all).
        cache: recently committed instances (`sagas.runtime.instance_cache`).
    """

    def __init__(
        self,
        definitions: Mapping[str, Mapping[int, Saga[Any]]],
        codec: Codec,
        classes: ClassMap,
        store: Store,
        clock: Clock,
        hold_for: timedelta,
        bootstrap_servers: str,
        client_options: dict[str, Any] | None = None,
        topic_prefix: str = "",
        telemetry: EngineTelemetry | None = None,
        cache: InstanceCache | None = None,
    ) -> None:
        self._definitions = definitions
        self.cache = cache if cache is not None else InstanceCache()
        self._telemetry = telemetry
        self._topic_prefix = topic_prefix
        self._by_inbox = {topics.inbox(name): name for name in definitions}
        self._codec = codec
        self._classes = classes
        self._store = store
        # Store writes wait out a full or read-only store (nothing committed is dropped).
        self.writer = StoreWriter(store)
        self._clock = NonDecreasingClock(clock)
        self._hold_for = hold_for
        self._changelog = changelog.ChangelogReader(bootstrap_servers, client_options)
        self.decisions = 0

    async def close(self) -> None:
        """Release the changelog reader; idempotent."""
        await self._changelog.close()

    # -- PartitionHandler -----------------------------------------------------------

    async def assigned(self, tp: TopicPartition) -> None:
        saga = self._by_inbox[tp.topic]
        self.cache.drop(saga, tp.partition)  # catch-up may change what the store holds
        if self._telemetry is not None:
            self._telemetry.assigned(saga, tp.partition)
        await self._changelog.catch_up(
            self._store,
            saga,
            self._topic_prefix + topics.changelog(saga),
            tp.partition,
            apply=self.writer.apply,
        )

    async def revoked(self, tp: TopicPartition) -> None:
        self.cache.drop(self._by_inbox[tp.topic], tp.partition)
        if self._telemetry is not None:
            self._telemetry.revoked(self._by_inbox[tp.topic], tp.partition)

    def _work(self, saga: str, partition: int) -> _Work:
        work = _Work(saga, partition)
        if self._telemetry is not None:
            work.trace = self._telemetry.batch(saga, partition)
        return work

    async def process(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> Batch:
        work = self._work(self._by_inbox[tp.topic], tp.partition)
        if self._telemetry is not None:
            self._telemetry.consumed(records)
        await self._prefetch(work, records)
        for record in records:
            await self._one(work, record)
        return self._finish(work)

    async def _prefetch(self, work: _Work, records: Sequence[ConsumerRecord[Any, Any]]) -> None:
        """Load the batch's instances in one store query instead of one per record.

        Ids come from the ``saga_id`` header or the key, as `_one` reads them; an id read
        wrongly here only costs `_load` its own query later.
        """
        ids: set[str] = set()
        for record in records:
            raw = next((v for k, v in record.headers or () if k == "saga_id"), record.key)
            if raw:
                ids.add(bytes(raw).decode(errors="replace"))
        for saga_id in list(ids):
            cached = self.cache.get(work.saga, work.partition, saga_id)
            if cached is not None:
                self._adopt(work, cached)
                ids.discard(saga_id)
        if not ids:
            return
        bodies = await self._store.get_many(work.saga, sorted(ids))
        for body in bodies.values():
            self._remember(work, body)
        absent = ids - set(bodies)
        work.absent.update(absent)
        if absent:  # a saga starting here releases its held messages: look them up at once
            held = await self._store.held_ids(work.saga, sorted(absent))
            work.none_held.update(absent - held)

    async def dead_letter(
        self, tp: TopicPartition, record: ConsumerRecord[Any, Any], error: BaseException
    ) -> Batch:
        saga = self._by_inbox[tp.topic]
        self._work(saga, tp.partition)  # nothing decided: no spans from the failed attempt
        out = dead_letter(
            record, topics.dead_letters(saga), "processing-error", repr(error), type(error).__name__
        )
        return Batch([out], _Decided(Changes(saga, tp.partition)))

    async def tick(self, tp: TopicPartition) -> Batch | None:
        saga = self._by_inbox[tp.topic]
        now = self._clock()
        due = await self._store.due(saga, tp.partition, iso(now))
        expired = await self._store.expired_held(saga, tp.partition, iso(now))
        if not due and not expired:
            return None
        work = self._work(saga, tp.partition)
        for body in due:
            instance = self._remember(work, body)
            for timer in sorted(instance.scheduled_timers, key=lambda t: t.due):
                if timer.due <= now:
                    fired = TimerFired(
                        kind=timer.kind, step=timer.step, attempt=timer.attempt, due=timer.due
                    )
                    await self._decide(work, work.instances[instance.saga_id], fired, now)
        for held in expired:
            self._expire(work, held)
        return self._finish(work)

    async def committed(
        self, tp: TopicPartition, batch: Batch, sent: Sequence[RecordMetadata]
    ) -> None:
        decided: _Decided = batch.context
        changes = decided.changes
        log_topic = topics.changelog(changes.saga_name)
        offsets = [
            m.offset for o, m in zip(batch.outgoing, sent, strict=True) if o.topic == log_topic
        ]
        if offsets:
            changes.next_changelog_offset = max(offsets) + 1
        # Returns only once the store took the changes: the loop's next poll waits for
        # it, so no batch is decided against a store behind Kafka.
        await self.writer.apply(changes)
        self.cache.committed(changes.saga_name, changes.partition, decided.instances)
        if self._telemetry is not None:
            dlq = topics.dead_letters(changes.saga_name)
            dead = sum(1 for o in batch.outgoing if o.topic == dlq)
            self._telemetry.committed(changes.saga_name, tp.partition, dead)

    # -- one record -----------------------------------------------------------------

    async def _one(self, work: _Work, record: ConsumerRecord[Any, Any]) -> None:
        dlq = topics.dead_letters(work.saga)
        try:
            envelope = self._codec.decode(
                record.headers or [],
                record.value,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        except ContractError as exc:
            work.outgoing.append(
                dead_letter(record, dlq, exc.reason, exc.message, type(exc).__name__)
            )
            return
        saga_id = envelope.saga_id or (record.key.decode(errors="replace") if record.key else None)
        if not saga_id:
            work.outgoing.append(
                dead_letter(record, dlq, "missing-saga-id", "no saga_id header or key", "Rejected")
            )
            return
        now = self._clock()
        instance = await self._load(work, saga_id)
        try:
            definition = self._definition_for(work.saga, instance)
            action: Any = envelope
            if isinstance(envelope.payload, OperatorActionRecord):
                if instance is None:
                    raise ValueError(f"no saga {saga_id} to act on")
                action = wire.operator_action(envelope.payload, definition)
            with saga_scope(saga_id):
                decided = await self._decide(work, instance, action, now, record=record)
        except (SagasError, ValueError, TypeError) as exc:
            work.outgoing.append(dead_letter(record, dlq, "rejected", str(exc), type(exc).__name__))
            return
        if not decided:
            self._hold(work, saga_id, record, now)

    async def _decide(
        self,
        work: _Work,
        instance: SagaInstance[Any] | None,
        action: Any,
        now: datetime,
        record: ConsumerRecord[Any, Any] | None = None,
    ) -> bool:
        """Run `decide`; False when the input concerns a saga that does not exist yet."""
        definition = self._definition_for(work.saga, instance)
        began = time.time_ns() if work.trace is not None else 0
        decision = decide(definition, instance, action, now)
        self.decisions += 1
        if decision.instance is None:
            return False
        new = decision.instance
        traces: list[tuple[str, str | None] | None] | None = None
        if self._telemetry is not None and work.trace is not None:
            if instance is None:
                new = self._telemetry.ensure_trace(new)
            traces = self._telemetry.decided(
                work.trace, instance, new, action, record, decision.outgoing, began
            )
        work.instances[new.saga_id] = new
        for i, out in enumerate(decision.outgoing):
            if out.kind is OutgoingKind.DEAD_LETTER:
                work.outgoing.append(kept_dead_letter(out, self._codec, work.saga, work.partition))
                continue
            work.outgoing.append(
                wire.encode(
                    out,
                    new,
                    now,
                    self._codec,
                    self._classes,
                    self._topic_prefix,
                    trace=traces[i] if traces is not None else None,
                )
            )
        if instance is None:
            await self._release_held(work, new.saga_id, now)
        return True

    # -- held messages (a reply or event that overtook its saga's start) ----------------

    def _hold(
        self, work: _Work, saga_id: str, record: ConsumerRecord[Any, Any], now: datetime
    ) -> None:
        previous = work.held.get(saga_id)
        messages = list(previous.messages) if previous else []
        messages.append(
            {
                "headers": [[k, base64.b64encode(v).decode()] for k, v in record.headers or ()],
                "value": base64.b64encode(record.value or b"").decode(),
                "key": base64.b64encode(record.key or b"").decode(),
                "offset": record.offset,
            }
        )
        expires = previous.expires_at if previous else iso(now + self._hold_for)
        work.held[saga_id] = Held(saga_id, work.partition, expires, messages)

    async def _release_held(self, work: _Work, saga_id: str, now: datetime) -> None:
        held = work.held.pop(saga_id, None)
        if held is None and saga_id not in work.none_held:
            held = await self._store.held(work.saga, saga_id)
        if held is None:
            return
        work.released.add(saga_id)
        for message in held.messages:
            headers = [(k, base64.b64decode(v)) for k, v in message["headers"]]
            envelope: Envelope = self._codec.decode(headers, base64.b64decode(message["value"]))
            await self._decide(work, work.instances[saga_id], envelope, now)

    def _expire(self, work: _Work, held: Held) -> None:
        work.released.add(held.saga_id)
        for message in held.messages:
            record: ConsumerRecord[Any, Any] = ConsumerRecord(
                topics.inbox(work.saga),
                held.partition,
                message["offset"],
                0,
                0,
                base64.b64decode(message["key"]),
                base64.b64decode(message["value"]),
                None,
                0,
                0,
                tuple((k, base64.b64decode(v)) for k, v in message["headers"]),
            )
            work.outgoing.append(
                dead_letter(
                    record,
                    topics.dead_letters(work.saga),
                    "saga-not-started",
                    f"saga {held.saga_id} did not start before {held.expires_at}",
                    "Expired",
                )
            )

    # -- state ----------------------------------------------------------------------

    async def _load(self, work: _Work, saga_id: str) -> SagaInstance[Any] | None:
        if saga_id in work.instances:
            return work.instances[saga_id]
        if saga_id in work.absent:
            return None
        cached = self.cache.get(work.saga, work.partition, saga_id)
        if cached is not None:
            return self._adopt(work, cached)
        body = await self._store.get(work.saga, saga_id)
        return None if body is None else self._remember(work, body)

    def _remember(self, work: _Work, body: dict[str, Any]) -> SagaInstance[Any]:
        saga_id = str(body["saga_id"])
        if saga_id in work.instances:
            return work.instances[saga_id]
        definition = self._definitions[work.saga][int(body["version"])]
        return self._adopt(work, instance_from_dict(definition, body))

    def _adopt(self, work: _Work, instance: SagaInstance[Any]) -> SagaInstance[Any]:
        """Make ``instance`` (decoded from the store, or cached) the batch's starting point."""
        work.instances[instance.saga_id] = instance
        work.before[instance.saga_id] = len(instance.history)
        return instance

    def _definition_for(self, saga: str, instance: SagaInstance[Any] | None) -> Saga[Any]:
        versions = self._definitions[saga]
        if instance is None:
            return versions[max(versions)]
        return versions[instance.version]

    def _finish(self, work: _Work) -> Batch:
        changes = Changes(work.saga, work.partition, released=sorted(work.released))
        decided = _Decided(changes)
        log_topic = topics.changelog(work.saga)
        for saga_id, instance in work.instances.items():
            stored = _stored(work, instance)
            if stored is None:
                continue
            changes.instances.append(stored)
            decided.instances.append(instance)
            work.outgoing.append(
                Outgoing(
                    log_topic,
                    changelog.instance_value(stored),
                    key=saga_id.encode(),
                    partition=work.partition,
                )
            )
        for held in work.held.values():
            changes.held.append(held)
            work.outgoing.append(
                Outgoing(
                    log_topic,
                    changelog.held_value(held),
                    key=changelog.held_key(held.saga_id),
                    partition=work.partition,
                )
            )
        for saga_id in work.released:
            work.outgoing.append(
                Outgoing(log_topic, None, key=changelog.held_key(saga_id), partition=work.partition)
            )
        return Batch(work.outgoing, decided)


def stored_row(instance: SagaInstance[Any], partition: int) -> StoredInstance:
    """The store row (and changelog record) the engine writes for ``instance``, whole history."""
    stored = _stored(_Work(instance.saga, partition), instance)
    assert stored is not None  # an instance not loaded in this batch is always written
    return stored


def _stored(work: _Work, instance: SagaInstance[Any]) -> StoredInstance | None:
    """The row for an instance the batch changed (None when it did not change)."""
    first_new = work.before.get(instance.saga_id, 0)
    if first_new == len(instance.history) and instance.saga_id in work.before:
        return None
    body = instance_to_dict(instance)
    history = body.get("history")
    entries = history[first_new:] if isinstance(history, list) else []
    due = [t.due for t in instance.scheduled_timers]
    return StoredInstance(
        saga_name=instance.saga,
        saga_id=instance.saga_id,
        partition=work.partition,
        version=instance.version,
        state=instance.state.value,
        updated_at=iso(instance.updated),
        body=body,
        started_at=iso(instance.created),
        ended_at=iso(instance.ended) if instance.ended else None,
        next_due=iso(min(due)) if due else None,
        history=[(int(str(e["seq"])), str(e["at"]), e) for e in entries if isinstance(e, dict)],
    )
