"""What the engine tells its telemetry: the observer protocols and the no-op default.

The worker and the engine call an `EngineObserver` unconditionally; with telemetry off
it is a `NoObserver`, which does nothing and needs no OpenTelemetry. The real one,
`sagas.telemetry.EngineTelemetry`, is built (and imports the OpenTelemetry SDK) only
when telemetry is on.

An observer never changes what is stored: it sees the instances, records and
decisions, and gives back only the trace headers of the messages a decision sends
(`BatchObserver.decided`). The changelog, history and dead-letter records and the
store's rows are the same with any observer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Protocol

from sagas.machine import SagaInstance
from sagas.machine.outputs import Outgoing
from sagas.runtime.transport.records import Consumed

TraceHeaders = tuple[str, str | None]
"""The ``traceparent`` and ``tracestate`` a sent message carries."""

LagSource = Callable[[], Iterable[tuple[str, int, str, int]]]
"""Yields (topic, partition, group, lag) of every partition owned."""

InFlightSource = Callable[[], Mapping[str, int]]
"""Gives the sagas not ended, by saga name, in the units owned."""


class BatchObserver(Protocol):
    """What one batch of one saga in one unit decided."""

    def decided(
        self,
        before: SagaInstance[Any] | None,
        after: SagaInstance[Any],
        action: Any,
        record: Consumed | None,
        outgoing: Sequence[Outgoing],
        started_ns: int,
    ) -> Sequence[TraceHeaders | None]:
        """One decision (``action`` turned ``before`` into ``after``), begun at
        ``started_ns``; returns the trace headers of each of ``outgoing``, or nothing
        (empty) when the messages carry the saga's own trace context."""
        ...

    def committed(self) -> None:
        """The batch's transaction committed: count what it decided. Called at most
        once, and never for a batch that did not commit (its unit lost, or a batch
        after it failed): each batch keeps its own counts, so two batches of a unit in
        flight at once (`SAGAS_MAX_IN_FLIGHT=2`) are each counted once."""
        ...


class EngineObserver(Protocol):
    """Spans and metrics of an engine, told what its units do."""

    @property
    def positions(self) -> Mapping[tuple[str, int], int]:
        """The position after the last record consumed, by (logical topic, partition)."""
        ...

    def assigned(self, saga: str, partition: int) -> None:
        """The unit ``partition`` of ``saga`` is owned from now on."""
        ...

    def revoked(self, saga: str, partition: int) -> None:
        """The unit ``partition`` of ``saga`` is given up (what it had not committed
        counts for nothing)."""
        ...

    def consumed(self, records: Sequence[Consumed]) -> None:
        """A batch kept ``records`` (logical topic names) to decide."""
        ...

    def batch(self, saga: str, partition: int) -> BatchObserver:
        """A new batch of ``saga`` in unit ``partition``."""
        ...

    def dead_lettered(self, topic: str, component: str, count: int = 1) -> None:
        """``count`` records went to the dead-letter topic ``topic`` (its logical name)."""
        ...

    def add_lag_source(self, source: LagSource) -> None:
        """Ask ``source`` for consumer lag when metrics are collected."""
        ...

    def add_in_flight_source(self, source: InFlightSource) -> None:
        """Ask ``source`` for the sagas not ended when metrics are collected."""
        ...


class _NoBatch:
    def decided(
        self,
        before: SagaInstance[Any] | None,
        after: SagaInstance[Any],
        action: Any,
        record: Consumed | None,
        outgoing: Sequence[Outgoing],
        started_ns: int,
    ) -> Sequence[TraceHeaders | None]:
        return ()

    def committed(self) -> None:
        pass


class NoObserver:
    """The observer of an engine with telemetry off: does nothing, keeps nothing."""

    def __init__(self) -> None:
        self._batch = _NoBatch()

    @property
    def positions(self) -> Mapping[tuple[str, int], int]:
        return MappingProxyType({})

    def assigned(self, saga: str, partition: int) -> None:
        pass

    def revoked(self, saga: str, partition: int) -> None:
        pass

    def consumed(self, records: Sequence[Consumed]) -> None:
        pass

    def batch(self, saga: str, partition: int) -> BatchObserver:
        return self._batch

    def dead_lettered(self, topic: str, component: str, count: int = 1) -> None:
        pass

    def add_lag_source(self, source: LagSource) -> None:
        pass

    def add_in_flight_source(self, source: InFlightSource) -> None:
        pass
