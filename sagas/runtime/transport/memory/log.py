"""Partition logs with transactions: what a ``read_committed`` reader sees, and where.

Every offset of a partition holds an `Entry`: a record, or a transaction's marker
(commit or abort), which takes an offset like Kafka's control records and is never
returned. A record written in a transaction is in the log at once but readable only
once that transaction commits; the last stable offset (LSO) is the first offset of the
earliest transaction still open on the partition, so a reader never passes a record
whose fate is unknown.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from aiokafka.partitioner import murmur2

from sagas.runtime.transport.records import TP, Consumed, Headers


class Outcome(enum.Enum):
    OPEN = "open"
    COMMITTED = "committed"
    ABORTED = "aborted"


@dataclass(eq=False)
class Transaction:
    """One transaction of a transactional id (compared by identity)."""

    transactional_id: str
    outcome: Outcome = Outcome.OPEN
    first: dict[TP, int] = field(default_factory=dict)
    """The first offset it wrote on each partition it touched."""
    offsets: dict[str, dict[TP, int]] = field(default_factory=dict)
    """Offsets to commit for each group if it commits."""


@dataclass(frozen=True)
class Entry:
    record: Consumed | None
    """None: a transaction's marker."""
    transaction: Transaction | None
    """None: written outside a transaction (readable at once)."""

    @property
    def readable(self) -> bool:
        """Returned to a ``read_committed`` reader (below the LSO)."""
        return self.record is not None and (
            self.transaction is None or self.transaction.outcome is Outcome.COMMITTED
        )


class PartitionLog:
    """The entries of one partition, offsets from 0 (no retention, no compaction)."""

    def __init__(self, tp: TP) -> None:
        self.tp = tp
        self._entries: list[Entry] = []
        self._open: dict[Transaction, int] = {}
        """First offset of each transaction open on this partition."""

    @property
    def high_watermark(self) -> int:
        """The offset the next entry gets."""
        return len(self._entries)

    @property
    def last_stable_offset(self) -> int:
        return min(self._open.values(), default=self.high_watermark)

    def append(
        self,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp: int,
        transaction: Transaction | None,
    ) -> int:
        offset = self.high_watermark
        record = Consumed(self.tp.topic, self.tp.partition, offset, key, value, headers, timestamp)
        self._entries.append(Entry(record, transaction))
        if transaction is not None and transaction not in self._open:
            self._open[transaction] = offset
            transaction.first[self.tp] = offset
        return offset

    def end(self, transaction: Transaction) -> None:
        """Write ``transaction``'s marker (its outcome is already decided)."""
        assert transaction.outcome is not Outcome.OPEN, "a marker ends a decided transaction"
        self._entries.append(Entry(None, transaction))
        del self._open[transaction]

    def read(self, position: int, max_records: int) -> tuple[list[Consumed], int]:
        """The readable records from ``position`` on, at most ``max_records``, and the
        position after them: markers and aborted records are passed over, up to the LSO
        (a reader stops right after its last record when ``max_records`` is reached)."""
        records: list[Consumed] = []
        stable = self.last_stable_offset
        while position < stable and len(records) < max_records:
            entry = self._entries[position]
            if entry.readable:
                assert entry.record is not None
                records.append(entry.record)
            position += 1
        return records, position

    def committed_records(self) -> list[Consumed]:
        """Every record a ``read_committed`` reader returns, in offset order."""
        return self.read(0, self.high_watermark)[0]


def partition_for_key(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner for a keyed record (murmur2, as the Java client)."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions
