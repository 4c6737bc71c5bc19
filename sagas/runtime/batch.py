"""What one batch decides for one saga in one unit: instances, held messages, changes.

`SagaBatch` is the scratch state of a batch: the instances it loaded (from the cache or
the store) and changed, the messages it holds for sagas not started yet, and, when it
is finished, the store changes and the changelog records of every instance it changed.
Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sagas.machine import SagaInstance
from sagas.machine.serialize import instance_to_dict
from sagas.runtime import changelog, topics
from sagas.runtime.store import Changes, Held, StoredInstance
from sagas.runtime.transport.records import OutRecord


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

    def adopt(self, instance: SagaInstance[Any]) -> SagaInstance[Any]:
        """Make ``instance`` (from the store or the cache) the batch's starting point."""
        self.instances[instance.saga_id] = instance
        self.before[instance.saga_id] = len(instance.history)
        return instance

    def finish(self) -> tuple[Changes, list[OutRecord], list[SagaInstance[Any]]]:
        """The store changes, the changelog records and the changed instances."""
        changes = Changes(self.saga, self.partition, released=sorted(self.released))
        records: list[OutRecord] = []
        changed: list[SagaInstance[Any]] = []
        log_topic = topics.changelog(self.saga)
        for saga_id, instance in self.instances.items():
            stored = self._stored(instance)
            if stored is None:
                continue
            changes.instances.append(stored)
            changed.append(instance)
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

    def _stored(self, instance: SagaInstance[Any]) -> StoredInstance | None:
        """The row of an instance the batch changed (None when it did not change)."""
        first_new = self.before.get(instance.saga_id, 0)
        if first_new == len(instance.history) and instance.saga_id in self.before:
            return None
        return stored_row(instance, self.partition, first_new)


def stored_row(instance: SagaInstance[Any], partition: int, first_new: int = 0) -> StoredInstance:
    """The store row (and changelog record) the engine writes for ``instance``."""
    body = instance_to_dict(instance)
    history = body.get("history")
    entries = history[first_new:] if isinstance(history, list) else []
    due = [t.due for t in instance.scheduled_timers]
    return StoredInstance(
        saga_name=instance.saga,
        saga_id=instance.saga_id,
        partition=partition,
        version=instance.version,
        state=instance.state.value,
        updated_at=iso(instance.updated),
        body=body,
        started_at=iso(instance.created),
        ended_at=iso(instance.ended) if instance.ended else None,
        next_due=iso(min(due)) if due else None,
        history=[(int(str(e["seq"])), str(e["at"]), e) for e in entries if isinstance(e, dict)],
    )
