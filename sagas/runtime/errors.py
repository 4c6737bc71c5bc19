"""Errors of the runtime (Kafka loop and SQLite store).

::

    SagasError
    └── RuntimeFailure              the engine's imperative shell
        ├── StoreError              the SQLite store cannot be read or written (retryable)
        │   └── StoreUnwritable     it refuses writes for now: full, read-only, locked, I/O
        ├── TopicSetupError         topics are missing and cannot be created
        ├── FencedError             another process took over a partition (this one stops)
        ├── OwnershipError          a unit's state was to change against its table (a bug)
        ├── GroupMismatch           the engines of one group run different saga sets
        ├── CorruptChangelog        a changelog record does not decode (this one stops)
        └── TransportError          the broker did not answer or refused for now (retryable)
            ├── InDoubt             a transaction's outcome is unknown
            └── NotAssigned         the partition left this member's assignment
"""

from __future__ import annotations

from typing import Self

from sagas.errors import SagasError


class RuntimeFailure(SagasError):
    """Root of the runtime's errors."""


class StoreError(RuntimeFailure):
    """The SQLite store cannot be read or written (full disk, read-only, corrupt)."""

    retryable = True


class StoreUnwritable(StoreError):
    """The store refuses writes for now (disk full, read-only, locked, I/O error).

    Nothing was written; the same write can be retried once the condition clears.
    """


class TopicSetupError(RuntimeFailure):
    """A topic the engine needs is missing and cannot be created."""


class FencedError(RuntimeFailure):
    """A newer owner of a partition fenced this process's producer."""


class OwnershipError(RuntimeFailure):
    """A unit's ownership state was to change in a way `sagas.runtime.ownership`'s
    ``TRANSITIONS`` does not allow: a bug in the engine, not retryable. The state is
    left as it was.

    Attributes:
        unit: the unit's number, ``k``.
        current: the state it is in.
        new: the state it was to move to.
        why: what made it move.
    """

    def __init__(self, unit: int, current: str, new: str, why: str) -> None:
        super().__init__(f"unit {unit}: no transition from {current} to {new} ({why})")
        self.unit = unit
        self.current = current
        self.new = new
        self.why = why


class GroupMismatch(RuntimeFailure):
    """The engines of one consumer group subscribe to different topics and none reads
    them all: they run different sets of sagas. Not retryable: the deployment must
    change (each set of sagas in its own ``SAGAS_ENGINE_GROUP``)."""


class CorruptChangelog(RuntimeFailure):
    """A changelog record does not decode: not JSON, not UTF-8, an unknown ``kind``,
    members missing or of the wrong type.

    The changelog is the engine's state, so such a record is neither skipped nor
    dead-lettered (either would lose the instance or the held messages it holds). Not
    retryable: taking the unit fails, and the engine stops with this error (`Engine.run`
    raises it); started again, it stops at the same record, which needs an operator.
    The read model dead-letters the record instead (its copy of the state is not the
    engine's).

    Attributes:
        why: what is wrong with the record.
        key: the record's key, when known.
        topic: the changelog topic (logical name), when known.
        partition: its partition, when known.
        offset: the record's offset, when known.
    """

    def __init__(
        self,
        why: str,
        *,
        key: bytes | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(why)
        self.why = why
        self.key = key
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def located(self, topic: str, partition: int, offset: int | None) -> Self:
        """Fill in where the record was read (keeps values already set); returns self."""
        self.topic = self.topic if self.topic is not None else topic
        self.partition = self.partition if self.partition is not None else partition
        self.offset = self.offset if self.offset is not None else offset
        return self

    def __str__(self) -> str:
        where = "a changelog record"
        if self.topic is not None:
            where = f"the changelog record at {self.topic}[{self.partition}]@{self.offset}"
        if self.key is not None:
            where += f" (key {self.key!r:.200})"
        return f"{where} is corrupt: {self.why}"


class TransportError(RuntimeFailure):
    """The broker did not answer, or refused for now; the same call may succeed later."""

    retryable = True


class InDoubt(TransportError):
    """Nobody knows whether the transaction committed: abandon the producer and read
    the partition's state back from the broker."""


class NotAssigned(TransportError):
    """The partition left this member's assignment meanwhile (its next owner has it)."""
