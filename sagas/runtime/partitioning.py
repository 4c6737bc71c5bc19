"""Where a saga lives: its key and its partition number.

Every topic the engine consumes (each saga's inbox, the domain event topics its sagas
start from or wait for) is split the same way: partition ``k`` of all of them, and of
each saga's changelog, belong to the same engine process, which decides them in one
transaction per batch (a *unit*, `sagas.runtime.units`). A saga lives in partition

    k = murmur2(saga key) mod partitions

where the saga key is the variable part of its id: for the template
``"order:{order_id}"`` and the id ``order:o1`` it is ``o1`` (several fields are joined
by ``|``). A domain event published keyed by that value (the aggregate id, as is usual)
on a topic with as many partitions as the inbox lands in partition ``k`` too, so the
engine that reads it decides it at once; an event that lands elsewhere is forwarded to
the saga's inbox partition. Commands are keyed by the saga key and participants reply
with the command's key, so replies come back to ``k``. Which process owns unit ``k`` is
decided elsewhere: `sagas.runtime.transport.assignment.deal`, which the Kafka adapter's
`CoPartitionedAssignor` runs.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import murmur2

from sagas.definition import Saga


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` among ``partitions``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def _pattern(template: str) -> re.Pattern[str]:
    parts: list[str] = []
    for literal, field, _, _ in string.Formatter().parse(template):
        parts.append(re.escape(literal))
        if field is not None:
            parts.append("(.*?)")
    return re.compile("^" + "".join(parts) + "$", re.DOTALL)


@dataclass(frozen=True)
class SagaKeys:
    """Turns the ids of one saga (every version's templates) into keys."""

    patterns: tuple[re.Pattern[str], ...]

    @classmethod
    def of(cls, versions: Iterable[Saga[Any]]) -> SagaKeys:
        templates: list[str] = []
        for definition in versions:
            for start in definition.starts:
                if start.saga_id not in templates:
                    templates.append(start.saga_id)
        return cls(tuple(_pattern(t) for t in templates))

    def key(self, saga_id: str) -> str:
        """The saga key of ``saga_id`` (the id itself when no template matches it)."""
        for pattern in self.patterns:
            match = pattern.match(saga_id)
            if match is not None:
                return "|".join(match.groups())
        return saga_id


class Partitioning:
    """Saga keys and partitions of every saga an engine runs.

    Args:
        definitions: every version of every saga, by name and version.
        partitions: the partition count of the inboxes (``SAGAS_PARTITIONS``).
    """

    def __init__(self, definitions: Mapping[str, Mapping[int, Saga[Any]]], partitions: int) -> None:
        self.partitions = partitions
        self._keys = {name: SagaKeys.of(v.values()) for name, v in definitions.items()}

    def key(self, saga: str, saga_id: str) -> bytes:
        """The Kafka key of everything sent for ``saga_id`` that must come back to it."""
        keys = self._keys.get(saga)
        return (keys.key(saga_id) if keys is not None else saga_id).encode()

    def partition(self, saga: str, saga_id: str) -> int:
        """The partition number ``saga_id`` lives in."""
        return partition_for(self.key(saga, saga_id), self.partitions)
