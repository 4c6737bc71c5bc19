"""The records the runtime consumes and produces, independent of any Kafka client."""

from __future__ import annotations

from typing import NamedTuple

Headers = tuple[tuple[str, bytes], ...]


class TP(NamedTuple):
    """A topic partition (logical topic name: no prefix)."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}[{self.partition}]"


class Consumed(NamedTuple):
    """A record read from a partition."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers = ()
    timestamp: int = 0
    """Milliseconds since the epoch (the producer's send time)."""

    @property
    def tp(self) -> TP:
        return TP(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """The first header called ``name``, if any."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class OutRecord(NamedTuple):
    """A record to produce; ``partition`` None means by key (the default partitioner)."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None


class Delivered(NamedTuple):
    """Where a produced record landed."""

    topic: str
    partition: int
    offset: int
