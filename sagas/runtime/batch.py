"""What one batch decides for one saga in one unit: instances, held messages, changes.

`SagaBatch` is the scratch state of a batch: the instances it loaded (from the cache or
the store) and changed, the messages it holds for sagas not started yet, and, when it
is finished, the store changes and the changelog records of every instance it changed.
Nothing here does I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sagas.machine import HistoryEntry, SagaInstance
from sagas.machine.codec import to_json
from sagas.machine.serialize import instance_to_dict
from sagas.runtime import changelog, topics
from sagas.runtime.store import Changes, Held, StoredInstance
from sagas.runtime.transport.records import OutRecord

HISTORY_WINDOW = 50
"""History entries an instance keeps (in the store, the changelog and the cache); older
ones go to ``sagas.<saga>.history``, which the read model follows. A saga retried ten
thousand times stays as small as one retried fifty times."""

SEEN_WINDOW = 100
"""Input ids an instance keeps to drop duplicates. An older duplicate finds its step
decided already and is ignored by the state machine as late."""


def bounded(instance: SagaInstance[Any]) -> tuple[SagaInstance[Any], tuple[HistoryEntry, ...]]:
    """``instance`` with at most ``HISTORY_WINDOW`` history entries and ``SEEN_WINDOW``
    seen ids, and the history entries moved out (oldest first)."""
    moved: tuple[HistoryEntry, ...] = ()
    history, offset, seen = instance.history, instance.history_offset, instance.seen
    if len(history) > HISTORY_WINDOW:
        cut = len(history) - HISTORY_WINDOW
        moved, history, offset = history[:cut], history[cut:], offset + cut
    if len(seen) > SEEN_WINDOW:
        seen = seen[-SEEN_WINDOW:]
    if not moved and seen is instance.seen:
        return instance, ()
    return replace(instance, history=history, history_offset=offset, seen=seen), moved


def history_value(saga_id: str, entries: tuple[HistoryEntry, ...]) -> bytes:
    """A history record: entries moved out of an instance, as JSON."""
    doc = {"saga_id": saga_id, "entries": [to_json(e) for e in entries]}
    return json.dumps(doc, separators=(",", ":")).encode()


def history_key(saga_id: str, first_seq: int) -> bytes:
    """Unique per record (compaction keeps every one): the saga id and its first seq."""
    return f"{saga_id}#{first_seq}".encode()


def iso(moment: datetime) -> str:
    """Sortable UTC text: the store compares due times as strings."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class SagaBatch:
    """One saga's part of a unit's batch."""

    saga: str
    partition: int
    instances: dict[str, SagaInstance[Any]] = field(default_factory=dict)
    before: dict[str, int] = field(default_factory=dict)
    """History length of each instance when it was loaded (unchanged: not written)."""
    held: dict[str, Held] = field(default_factory=dict)
    released: set[str] = field(default_factory=set)
    absent: set[str] = field(default_factory=set)
    """Looked up in the store, not there."""
    none_held: set[str] = field(default_factory=set)
    """Absent, and no held messages stored for them either."""
    was_running: dict[str, bool] = field(default_factory=dict)
    """Whether each loaded instance had not ended (for the in-flight counts)."""

    def adopt(self, instance: SagaInstance[Any]) -> SagaInstance[Any]:
        """Make ``instance`` (from the store or the cache) the batch's starting point."""
        self.instances[instance.saga_id] = instance
        self.before[instance.saga_id] = instance.history_length
        self.was_running[instance.saga_id] = not instance.state.ended
        return instance

    def running_delta(self, changed: list[SagaInstance[Any]]) -> int:
        """How the count of sagas not ended changes with ``changed``."""
        delta = 0
        for instance in changed:
            now = not instance.state.ended
            delta += int(now) - int(self.was_running.get(instance.saga_id, False))
        return delta

    def finish(self) -> tuple[Changes, list[OutRecord], list[SagaInstance[Any]]]:
        """The store changes, the changelog records and the changed instances."""
        changes = Changes(self.saga, self.partition, released=sorted(self.released))
        records: list[OutRecord] = []
        changed: list[SagaInstance[Any]] = []
        log_topic = topics.changelog(self.saga)
        for saga_id, decided in self.instances.items():
            if not self._changed(decided):
                continue
            instance, moved = bounded(decided)
            stored = stored_row(instance, self.partition)
            changes.instances.append(stored)
            changed.append(instance)
            if moved:
                records.append(
                    OutRecord(
                        topics.history(self.saga),
                        history_value(saga_id, moved),
                        key=history_key(saga_id, moved[0].seq),
                        partition=self.partition,
                    )
                )
            records.append(
                OutRecord(
                    log_topic,
                    changelog.instance_value(stored),
                    key=saga_id.encode(),
                    partition=self.partition,
                )
            )
        for held in self.held.values():
            changes.held.append(held)
            records.append(
                OutRecord(
                    log_topic,
                    changelog.held_value(held),
                    key=changelog.held_key(held.saga_id),
                    partition=self.partition,
                )
            )
        for saga_id in sorted(self.released):
            records.append(
                OutRecord(
                    log_topic, None, key=changelog.held_key(saga_id), partition=self.partition
                )
            )
        return changes, records, changed

    def _changed(self, instance: SagaInstance[Any]) -> bool:
        """Whether the batch changed ``instance`` (every decision adds a history entry)."""
        before = self.before.get(instance.saga_id)
        return before is None or before != instance.history_length


def stored_row(instance: SagaInstance[Any], partition: int) -> StoredInstance:
    """The store row (and changelog record) the engine writes for ``instance``.

    The body is encoded once, here, and kept as text only: the changelog record and the
    store row both carry the text, and the decoded tree (hundreds of objects for an
    instance) is freed at once instead of living until the store write: the saturated
    engine spends a quarter less in the garbage collector (docs/benchmarks.md, "What the
    rows cost").
    """
    due = [t.due for t in instance.scheduled_timers]
    return StoredInstance(
        saga_name=instance.saga,
        saga_id=instance.saga_id,
        partition=partition,
        version=instance.version,
        state=instance.state.value,
        updated_at=iso(instance.updated),
        body=None,
        started_at=iso(instance.created),
        ended_at=iso(instance.ended) if instance.ended else None,
        next_due=iso(min(due)) if due else None,
        body_json=json.dumps(instance_to_dict(instance), separators=(",", ":")),
    )
