"""The unit worker: decides every record of a unit's batch.

For a batch it reads each record (`sagas.runtime.inputs`): an inbox record is an input
of its saga; a domain event is routed (`sagas.runtime.router`) and decided at once when
its saga lives in this unit, else forwarded to the saga's inbox partition. It loads the
instances the batch concerns in one store query per saga (the cache first), runs the
pure `decide`, and returns everything to produce in the batch's transaction: commands,
outcome and domain events, dead letters, forwarded events, and one changelog record per
changed instance and per changed set of held messages. The store is written only once
the transaction committed (`committed`).

A schema registry that cannot be reached is not a bad message: the batch is decided
again after a pause (`Decided.retry`), and nothing is dead-lettered for it.
"""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.errors import ContractError, RegistryError
from sagas.contracts.messages.sagas import OperatorAction as OperatorActionRecord
from sagas.contracts.outage import RegistryOutage
from sagas.contracts.record import Envelope
from sagas.definition import Saga
from sagas.errors import SagasError
from sagas.machine import SagaInstance, TimerFired, decide
from sagas.machine.outputs import OutgoingKind
from sagas.machine.serialize import instance_from_dict
from sagas.runtime import changelog, topics, wire
from sagas.runtime.batch import SagaBatch, iso
from sagas.runtime.clock import NonDecreasingClock
from sagas.runtime.deadletter import dead_letter
from sagas.runtime.instance_cache import InstanceCache
from sagas.runtime.observer import BatchObserver, EngineObserver, NoObserver
from sagas.runtime.partitioning import Partitioning
from sagas.runtime.router import Router
from sagas.runtime.store import Changes, Held, Store
from sagas.runtime.store_writer import StoreWriter
from sagas.runtime.transport.base import PartitionReader
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord
from sagas.runtime.units import Decided
from sagas.telemetry.logs import saga_scope

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass
class _Input:
    """A record read as an input of one saga instance."""

    saga: str
    saga_id: str
    envelope: Envelope
    record: Consumed


@dataclass
class _UnitWork:
    """What a batch (or tick) of one unit has decided so far."""

    k: int
    sagas: dict[str, SagaBatch] = field(default_factory=dict)
    outgoing: list[OutRecord] = field(default_factory=list)
    traces: dict[str, BatchObserver] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)


@dataclass
class _Committed:
    """A batch's context: per saga, its store changes, where its changelog records are
    among the batch's outgoing records, and the instances changed (for the cache)."""

    changes: list[tuple[Changes, list[int], list[SagaInstance[Any]]]]
    dead: dict[str, int]
    running: dict[str, int] = field(default_factory=dict)
    """Per saga, how the count of sagas not ended changes."""
    traces: dict[str, BatchObserver] = field(default_factory=dict)
    """Per saga, the batch's observer, told once the batch committed."""


class SagaWorker:
    """`UnitWorker` of the given definitions.

    Args:
        definitions: by saga name, by version; the newest version starts new sagas.
        codec, classes: the message contracts.
        store: the process's SQLite store.
        clock: the wall clock (tests and chaos jump it); `decide` is given it through a
            `NonDecreasingClock`, so a backward jump makes no timer early.
        partitioning: saga keys and partitions.
        reader: reads changelog partitions on catch-up.
        physical: the broker's name of a topic (the ``reply_to`` of commands and the
            ``dlq_topic`` of dead letters name physical topics).
        hold_for: how long a message for a saga not started yet is kept.
        telemetry: told what the worker does, for spans and metrics
            (`sagas.runtime.observer`); none: a `NoObserver` (telemetry off).
        cache: recently committed instances (`sagas.runtime.instance_cache`).
    """

    def __init__(
        self,
        definitions: Mapping[str, Mapping[int, Saga[Any]]],
        codec: Codec,
        classes: ClassMap,
        store: Store,
        clock: Clock,
        *,
        partitioning: Partitioning,
        reader: PartitionReader,
        physical: Callable[[str], str],
        hold_for: timedelta,
        telemetry: EngineObserver | None = None,
        cache: InstanceCache | None = None,
    ) -> None:
        self._definitions = definitions
        self._codec = codec
        self._classes = classes
        self._store = store
        self.writer = StoreWriter(store)
        self._clock = NonDecreasingClock(clock)
        self._partitioning = partitioning
        self._reader = reader
        self._physical = physical
        self._hold_for = hold_for
        self._telemetry = telemetry if telemetry is not None else NoObserver()
        self.cache = cache if cache is not None else InstanceCache()
        self._router = Router(definitions)
        self._inboxes = {topics.inbox(name): name for name in definitions}
        self._running: dict[tuple[str, int], int] = {}
        """Sagas not ended, per saga and owned unit (the in-flight gauge)."""
        self._wake: dict[tuple[str, int], str | None] = {}
        """Per saga and unit, the earliest due timer or held expiry known (UTC text);
        None: nothing is due; missing: unknown (the store is asked)."""
        self.decisions = 0
        self.registry = RegistryOutage(log, "", "batches wait")
        """Batches put back because the schema registry could not be reached."""

    # -- UnitWorker -------------------------------------------------------------------

    async def take(self, k: int) -> None:
        if k >= self._partitioning.partitions:
            # A partition of an event topic wider than the inboxes: no saga lives here,
            # and no changelog partition exists; the unit only forwards what lands.
            return
        for saga in self._definitions:
            self.cache.drop(saga, k)  # catch-up may change what the store holds
            self._wake.pop((saga, k), None)
            self._telemetry.assigned(saga, k)
            await changelog.catch_up(
                self._reader, self._store, saga, TP(topics.changelog(saga), k), self.writer.apply
            )
            self._running[(saga, k)] = await self._store.unfinished_count(saga, k)

    def give_up(self, k: int) -> None:
        for saga in self._definitions:
            self.cache.drop(saga, k)
            self._wake.pop((saga, k), None)
            self._running.pop((saga, k), None)
            self._telemetry.revoked(saga, k)

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        work = _UnitWork(k)
        try:
            # The registry's answers are fetched off the event loop; a registry that is
            # down delays the batch, it dead-letters nothing.
            await self._codec.resolve(r.value for r in records)
        except RegistryError as exc:
            self.registry.waited(exc)
            return Decided(retry=True)
        self.registry.answered()
        inputs: list[_Input] = []
        kept: list[Consumed] = []
        deferred: list[Consumed] = []
        waiting: set[TP] = set()  # partitions whose next record waits for ``busy``
        for record in records:
            tp = record.tp
            if tp in waiting:
                deferred.append(record)
                continue
            # With something busy, a record's dead letters and forwards are kept only if
            # the record is; with nothing busy every record is, so they go straight in.
            read = _UnitWork(k) if busy else work
            if record.topic in self._inboxes:
                found = self._read_inbox(read, self._inboxes[record.topic], record)
                items = [] if found is None else [found]
            else:
                items = self._read_event(read, record)
            if busy and any((i.saga, i.saga_id) in busy for i in items):
                # Its saga changes in a transaction still committing: decided after it,
                # and so is everything after it in its partition (offsets stay a prefix).
                waiting.add(tp)
                deferred.append(record)
                continue
            if read is not work:
                work.outgoing.extend(read.outgoing)
                for name, count in read.dead.items():
                    work.dead[name] = work.dead.get(name, 0) + count
            inputs.extend(items)
            kept.append(record)
        self._telemetry.consumed(kept)
        await self._prefetch(work, inputs)
        for item in inputs:
            await self._input(work, item)
        decided = self._finish(work)
        decided.deferred = deferred
        decided.touched = frozenset((i.saga, i.saga_id) for i in inputs)
        return decided

    def dead_letter(self, k: int, record: Consumed, error: BaseException) -> Decided:
        work = _UnitWork(k)
        saga = self._inboxes.get(record.topic)
        self._dlq(work, saga, record, "processing-error", repr(error), type(error).__name__)
        return self._finish(work)

    async def tick(self, k: int) -> Decided | None:
        now = self._clock()
        now_text = iso(now)
        work: _UnitWork | None = None
        for saga in self._definitions:
            wake = self._wake.get((saga, k), "")
            if wake is None or (wake and wake > now_text):
                continue  # nothing due yet: no store query
            due = await self._store.due(saga, k, now_text)
            expired = await self._store.expired_held(saga, k, now_text)
            self._wake[(saga, k)] = await self._next_wake(saga, k, now_text, due, expired)
            if not due and not expired:
                continue
            work = work or _UnitWork(k)
            sb = self._saga(work, saga)
            for body in due:
                instance = self._remember(sb, body)
                for timer in sorted(instance.scheduled_timers, key=lambda t: t.due):
                    if timer.due <= now:
                        fired = TimerFired(
                            kind=timer.kind, step=timer.step, attempt=timer.attempt, due=timer.due
                        )
                        await self._decide(work, sb, sb.instances[instance.saga_id], fired, now)
            for held in expired:
                self._expire(work, sb, held)
        return None if work is None else self._finish(work)

    async def committed(self, k: int, decided: Decided, delivered: Sequence[Delivered]) -> None:
        context = decided.context
        assert isinstance(context, _Committed)  # every Decided of this worker carries one
        for changes, positions, changed in context.changes:
            if positions:
                changes.next_changelog_offset = max(delivered[i].offset for i in positions) + 1
            # Returns only once the store took the changes: the unit's next batch waits
            # for it, so no batch is decided against a store behind Kafka.
            await self.writer.apply(changes)
            self.cache.committed(changes.saga_name, k, changed)
            self._note_wake(changes)
            key = (changes.saga_name, k)
            if key in self._running:
                self._running[key] += context.running.get(changes.saga_name, 0)
        for batch in context.traces.values():
            batch.committed()
        for saga in self._definitions:
            if dead := context.dead.get(saga, 0):
                self._telemetry.dead_lettered(topics.dead_letters(saga), "engine", dead)
        if context.dead.get(topics.ROUTER_DEAD_LETTERS):
            self._telemetry.dead_lettered(
                topics.ROUTER_DEAD_LETTERS, "router", context.dead[topics.ROUTER_DEAD_LETTERS]
            )

    # -- reading records ------------------------------------------------------------

    def _decode(self, record: Consumed) -> Envelope:
        return self._codec.decode(
            record.headers,
            record.value,
            topic=self._physical(record.topic),
            partition=record.partition,
            offset=record.offset,
        )

    def _read_inbox(self, work: _UnitWork, saga: str, record: Consumed) -> _Input | None:
        try:
            envelope = self._decode(record)
        except ContractError as exc:
            self._dlq(work, saga, record, exc.reason, exc.message, type(exc).__name__)
            return None
        raw = envelope.saga_id or (record.key.decode(errors="replace") if record.key else None)
        if not raw:
            self._dlq(work, saga, record, "missing-saga-id", "no saga_id header or key", "Rejected")
            return None
        partition = self._partitioning.partition(saga, raw)
        if partition != work.k:
            # Keyed otherwise than its saga (a participant that keys replies by saga id,
            # say): decided where the saga lives, one hop later.
            self._forward(work, saga, raw, record, partition)
            return None
        return _Input(saga, raw, envelope, record)

    def _forward(
        self, work: _UnitWork, saga: str, saga_id: str, record: Consumed, partition: int
    ) -> None:
        """``record`` to the saga's inbox partition, bytes and headers untouched (the
        traceparent too: the span that sent it stays the parent), the saga id set."""
        headers = tuple((n, v) for n, v in record.headers if n != "saga_id")
        work.outgoing.append(
            OutRecord(
                topics.inbox(saga),
                record.value,
                key=self._partitioning.key(saga, saga_id),
                headers=(*headers, ("saga_id", saga_id.encode())),
                partition=partition,
            )
        )

    def _read_event(self, work: _UnitWork, record: Consumed) -> list[_Input]:
        try:
            envelope = self._decode(record)
            routes = self._router.routes(envelope)
        except ContractError as exc:
            self._dlq(work, None, record, exc.reason, exc.message, type(exc).__name__)
            return []
        except (AttributeError, KeyError, ValueError) as exc:
            self._dlq(work, None, record, "rejected", repr(exc), type(exc).__name__)
            return []
        found: list[_Input] = []
        for route in routes:
            partition = self._partitioning.partition(route.saga, route.saga_id)
            if partition == work.k:
                found.append(_Input(route.saga, route.saga_id, envelope, record))
            else:
                self._forward(work, route.saga, route.saga_id, record, partition)
        return found

    def _dlq(
        self,
        work: _UnitWork,
        saga: str | None,
        record: Consumed,
        reason: str,
        message: str,
        error: str,
    ) -> None:
        target = topics.dead_letters(saga) if saga else topics.ROUTER_DEAD_LETTERS
        work.outgoing.append(
            dead_letter(record, self._physical(record.topic), target, reason, message, error)
        )
        work.dead[saga or target] = work.dead.get(saga or target, 0) + 1

    # -- deciding ---------------------------------------------------------------------

    def _saga(self, work: _UnitWork, saga: str) -> SagaBatch:
        sb = work.sagas.get(saga)
        if sb is None:
            sb = work.sagas[saga] = SagaBatch(saga, work.k)
            work.traces[saga] = self._telemetry.batch(saga, work.k)
        return sb

    async def _prefetch(self, work: _UnitWork, inputs: Sequence[_Input]) -> None:
        """Load the batch's instances in one store query per saga (the cache first)."""
        wanted: dict[str, set[str]] = {}
        for item in inputs:
            wanted.setdefault(item.saga, set()).add(item.saga_id)
        for saga, ids in wanted.items():
            sb = self._saga(work, saga)
            for saga_id in list(ids):
                cached = self.cache.get(saga, work.k, saga_id)
                if cached is not None:
                    sb.adopt(cached)
                    ids.discard(saga_id)
            if not ids:
                continue
            bodies = await self._store.get_many(saga, sorted(ids))
            for body in bodies.values():
                self._remember(sb, body)
            absent = ids - set(bodies)
            sb.absent.update(absent)
            if absent:  # a saga starting here releases its held messages: look them up
                held = await self._store.held_ids(saga, sorted(absent))
                sb.none_held.update(absent - held)

    async def _input(self, work: _UnitWork, item: _Input) -> None:
        sb = self._saga(work, item.saga)
        now = self._clock()
        instance = await self._load(sb, item.saga_id)
        try:
            definition = self._definition_for(item.saga, instance)
            action: Any = item.envelope
            if isinstance(item.envelope.payload, OperatorActionRecord):
                if instance is None:
                    raise ValueError(f"no saga {item.saga_id} to act on")
                action = wire.operator_action(item.envelope.payload, definition)
            with saga_scope(item.saga_id):
                decided = await self._decide(work, sb, instance, action, now, item.record)
        except (SagasError, ValueError, TypeError) as exc:
            self._dlq(work, item.saga, item.record, "rejected", str(exc), type(exc).__name__)
            return
        if not decided:
            self._hold(sb, item.saga_id, item.record, now)

    async def _decide(
        self,
        work: _UnitWork,
        sb: SagaBatch,
        instance: SagaInstance[Any] | None,
        action: Any,
        now: datetime,
        record: Consumed | None = None,
    ) -> bool:
        """Run `decide`; False when the input concerns a saga that does not exist yet."""
        definition = self._definition_for(sb.saga, instance)
        began = time.time_ns()
        decision = decide(definition, instance, action, now)
        self.decisions += 1
        if decision.instance is None:
            return False
        new = decision.instance
        traces = work.traces[sb.saga].decided(
            instance, new, action, record, decision.outgoing, began
        )
        sb.instances[new.saga_id] = new
        key = self._partitioning.key(sb.saga, new.saga_id)
        for i, out in enumerate(decision.outgoing):
            work.outgoing.append(
                wire.encode(
                    out,
                    new,
                    now,
                    self._codec,
                    self._classes,
                    key=key,
                    physical=self._physical,
                    partition=sb.partition,
                    trace=traces[i] if traces else None,
                )
            )
            if out.kind is OutgoingKind.DEAD_LETTER:
                work.dead[sb.saga] = work.dead.get(sb.saga, 0) + 1
        if instance is None:
            await self._release_held(work, sb, new.saga_id, now)
        return True

    # -- held messages (a reply or event that overtook its saga's start) ------------------

    def _hold(self, sb: SagaBatch, saga_id: str, record: Consumed, now: datetime) -> None:
        previous = sb.held.get(saga_id)
        messages = list(previous.messages) if previous else []
        messages.append(
            {
                "headers": [[k, base64.b64encode(v).decode()] for k, v in record.headers],
                "value": base64.b64encode(record.value or b"").decode(),
                "key": base64.b64encode(record.key or b"").decode(),
                "offset": record.offset,
                "topic": record.topic,
            }
        )
        expires = previous.expires_at if previous else iso(now + self._hold_for)
        sb.held[saga_id] = Held(saga_id, sb.partition, expires, messages)

    async def _release_held(
        self, work: _UnitWork, sb: SagaBatch, saga_id: str, now: datetime
    ) -> None:
        held = sb.held.pop(saga_id, None)
        if held is None and saga_id not in sb.none_held:
            held = await self._store.held(sb.saga, saga_id)
        if held is None:
            return
        sb.released.add(saga_id)
        for message in held.messages:
            headers = [(k, base64.b64decode(v)) for k, v in message["headers"]]
            envelope: Envelope = self._codec.decode(headers, base64.b64decode(message["value"]))
            await self._decide(work, sb, sb.instances[saga_id], envelope, now)

    def _expire(self, work: _UnitWork, sb: SagaBatch, held: Held) -> None:
        sb.released.add(held.saga_id)
        for message in held.messages:
            record = Consumed(
                str(message.get("topic") or topics.inbox(sb.saga)),
                held.partition,
                int(message["offset"]),
                base64.b64decode(message["key"]),
                base64.b64decode(message["value"]),
                tuple((k, base64.b64decode(v)) for k, v in message["headers"]),
            )
            self._dlq(
                work,
                sb.saga,
                record,
                "saga-not-started",
                f"saga {held.saga_id} did not start before {held.expires_at}",
                "Expired",
            )

    # -- state ------------------------------------------------------------------------

    async def _load(self, sb: SagaBatch, saga_id: str) -> SagaInstance[Any] | None:
        if saga_id in sb.instances:
            return sb.instances[saga_id]
        if saga_id in sb.absent:
            return None
        cached = self.cache.get(sb.saga, sb.partition, saga_id)
        if cached is not None:
            return sb.adopt(cached)
        body = await self._store.get(sb.saga, saga_id)
        return None if body is None else self._remember(sb, body)

    def _remember(self, sb: SagaBatch, body: dict[str, Any]) -> SagaInstance[Any]:
        saga_id = str(body["saga_id"])
        if saga_id in sb.instances:
            return sb.instances[saga_id]
        definition = self._definitions[sb.saga][int(body["version"])]
        return sb.adopt(instance_from_dict(definition, body))

    def _definition_for(self, saga: str, instance: SagaInstance[Any] | None) -> Saga[Any]:
        versions = self._definitions[saga]
        if instance is None:
            return versions[max(versions)]
        return versions[instance.version]

    def _finish(self, work: _UnitWork) -> Decided:
        outgoing = list(work.outgoing)
        changes: list[tuple[Changes, list[int], list[SagaInstance[Any]]]] = []
        running: dict[str, int] = {}
        for sb in work.sagas.values():
            saga_changes, records, changed = sb.finish()
            positions = list(range(len(outgoing), len(outgoing) + len(records)))
            outgoing.extend(records)
            changes.append((saga_changes, positions, changed))
            running[sb.saga] = sb.running_delta(changed)
        return Decided(
            outgoing=outgoing,
            outputs=len(work.outgoing),
            context=_Committed(changes, dict(work.dead), running, dict(work.traces)),
        )

    def in_flight(self) -> dict[str, int]:
        """Sagas not ended, by saga name, in the units owned now."""
        found = {saga: 0 for saga in self._definitions}
        for (saga, _), count in list(self._running.items()):
            found[saga] += count
        return found

    # -- when to look for due timers again ------------------------------------------------

    async def _next_wake(
        self, saga: str, k: int, now: str, due: Sequence[Any], expired: Sequence[Held]
    ) -> str | None:
        if due or expired:
            return ""  # more may be due once these are decided: ask again next tick
        earliest = await self._store.earliest_due(saga, k)
        expiry = await self._store.earliest_held_expiry(saga, k)
        found = [t for t in (earliest, expiry) if t is not None]
        return min(found) if found else None

    def _note_wake(self, changes: Changes) -> None:
        key = (changes.saga_name, changes.partition)
        if key not in self._wake:
            return  # unknown: the next tick asks the store
        times = [i.next_due for i in changes.instances if i.next_due is not None]
        times += [h.expires_at for h in changes.held]
        if changes.instance_rows:
            self._wake.pop(key, None)  # rows copied undecoded: ask the store
            return
        current = self._wake[key]
        if current == "" or not times:
            return
        earliest = min(times)
        self._wake[key] = earliest if current is None else min(current, earliest)
        # A timer cancelled or moved later leaves the known time too early, never too
        # late: the tick then finds nothing due and asks the store again.
