"""The engine: a set of saga definitions run on a transport, until `shutdown`.

Use it as ``async with Engine(...) as engine:`` (it runs in a task; `ready` says when
every unit it was given is owned; leaving the block shuts it down within
``grace``), or ``await engine.run()`` with `shutdown` called from elsewhere (a signal
handler). `shutdown` is idempotent: the loop finishes the batches in flight and
returns.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Protocol

from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.errors import RegistryError
from sagas.definition import Saga, Step
from sagas.errors import ConfigurationError
from sagas.runtime import topics
from sagas.runtime.instance_cache import InstanceCache
from sagas.runtime.loop import DEFAULT_COMMIT_TIMEOUT, DEFAULT_IDLE_TICK, EngineLoop
from sagas.runtime.observer import EngineObserver, NoObserver
from sagas.runtime.partitioning import Partitioning
from sagas.runtime.router import event_topics
from sagas.runtime.store import Store
from sagas.runtime.transport.base import Transport
from sagas.runtime.units import Delivery, UnitConfig
from sagas.runtime.worker import Clock, SagaWorker
from sagas.settings import EngineSettings

log = logging.getLogger(__name__)

REGISTRY_RETRY = timedelta(seconds=2)
"""Pause between attempts to register the writer schemas while the registry is down."""


def utcnow() -> datetime:
    return datetime.now(UTC)


class Companion(Protocol):
    """A task that runs next to the engine's loop and stops with it."""

    async def run(self) -> None:
        """Run until `stop`."""

    def stop(self) -> None:
        """Ask `run` to return; idempotent."""


def by_name(definitions: Sequence[Saga[Any]]) -> dict[str, dict[int, Saga[Any]]]:
    """Definitions by name and version; two definitions of one name and version clash."""
    table: dict[str, dict[int, Saga[Any]]] = {}
    for d in definitions:
        versions = table.setdefault(d.name, {})
        if d.version in versions:
            raise ConfigurationError(f"saga {d.name!r} version {d.version} is given twice")
        versions[d.version] = d
    return table


class Engine:
    """Runs every version of the given sagas until `shutdown`.

    Args:
        definitions: every version of every saga this engine runs.
        settings: groups, partitions, timing, limits.
        transport: the broker (`sagas.runtime.transport.kafka.KafkaTransport`, or the
            in-memory one).
        codec, classes: the message contracts.
        store: this process's SQLite store.
        clock: the engine's notion of now.
        telemetry: told what the engine does, for spans and metrics
            (`sagas.telemetry.EngineTelemetry`); none (the default): a `NoObserver`,
            telemetry off.
        companions: tasks run and stopped with the loop.
    """

    def __init__(
        self,
        definitions: Sequence[Saga[Any]],
        settings: EngineSettings,
        *,
        transport: Transport,
        codec: Codec,
        classes: ClassMap,
        store: Store,
        clock: Clock = utcnow,
        telemetry: EngineObserver | None = None,
        companions: Sequence[Companion] = (),
    ) -> None:
        self.definitions = by_name(definitions)
        self.settings = settings
        self._transport = transport
        self._codec = codec
        self._store = store
        self._companions = tuple(companions)
        self._telemetry = telemetry if telemetry is not None else NoObserver()
        self.partitioning = Partitioning(self.definitions, settings.partitions)
        physical = transport.physical
        self._reader = transport.partition_reader()
        self.worker = SagaWorker(
            self.definitions,
            codec,
            classes,
            store,
            clock,
            partitioning=self.partitioning,
            reader=self._reader,
            physical=physical,
            hold_for=settings.hold_unknown_for,
            telemetry=self._telemetry,
            cache=InstanceCache(settings.instance_cache),
        )
        self.event_topics = event_topics(self.definitions)
        config = UnitConfig(
            transport=transport,
            worker=self.worker,
            group_id=settings.engine_group,
            transactional_prefix=settings.transactional_prefix,
            max_batch=settings.max_batch,
            max_in_flight=settings.max_in_flight,
            delivery=Delivery(settings.delivery),
            commit_timeout=DEFAULT_COMMIT_TIMEOUT,
            heartbeat=settings.session_timeout / 5,
            idle_tick=DEFAULT_IDLE_TICK,
        )
        self.loop = EngineLoop(
            config,
            [*(topics.inbox(n) for n in sorted(self.definitions)), *self.event_topics],
            settings.session_timeout,
        )
        self._task: asyncio.Task[None] | None = None
        self._telemetry.add_lag_source(self._lag)
        self._telemetry.add_in_flight_source(self.worker.in_flight)

    @property
    def store(self) -> Store:
        """This process's store (read it; only the engine writes it)."""
        return self._store

    @property
    def ready(self) -> asyncio.Event:
        """Set once every unit the group gave this engine is owned."""
        return self.loop.ready

    def _lag(self) -> list[tuple[str, int, str, int]]:
        """(topic, partition, group, lag) of every partition owned (metrics thread)."""
        found: list[tuple[str, int, str, int]] = []
        consumer = self.loop.consumer
        positions = self._telemetry.positions
        if consumer is None:
            return found
        for tp in sorted(consumer.assignment()):
            position = positions.get((tp.topic, tp.partition))
            if position is None:
                continue  # nothing consumed here yet: position unknown
            lag = consumer.lag(tp, position)
            if lag is not None:
                found.append((tp.topic, tp.partition, self.settings.engine_group, lag))
        return found

    async def prepare(self) -> None:
        """Refuse removed versions still in use; create missing topics; register the
        writer schemas (waiting while the schema registry is down)."""
        for name, versions in self.definitions.items():
            in_use = await self._store.unfinished_versions(name)
            missing = sorted(in_use - set(versions))
            if missing:
                raise ConfigurationError(
                    f"saga {name!r}: versions {missing} still have running instances in "
                    f"{self._store.path}; keep those definitions until they end"
                )
        n = self.settings.partitions
        specs = [s for name in self.definitions for s in topics.saga_topics(name, n)]
        specs += [topics.TopicSpec(t, n) for t in self.event_topics]
        specs += [topics.TopicSpec(topics.OUTCOMES, n)]
        specs += [topics.TopicSpec(topics.ROUTER_DEAD_LETTERS, 1)]
        specs += [topics.TopicSpec(topics.READ_MODEL_DEAD_LETTERS, 1)]
        specs += [
            topics.TopicSpec(t, n)
            for t in sorted(self._output_topics())
            if t not in self.event_topics
        ]
        await self._transport.ensure_topics(specs, self.settings.replication_factor)
        while True:
            try:
                await self._codec.prepare()
                return
            except RegistryError as exc:
                log.warning("the schema registry is unavailable (%s); waiting for it", exc)
                await asyncio.sleep(REGISTRY_RETRY.total_seconds())  # backoff while it is down

    def _output_topics(self) -> set[str]:
        return {
            t
            for versions in self.definitions.values()
            for d in versions.values()
            for t in output_topics(d)
        }

    async def run(self) -> None:
        """Prepare, then run the loop (and the companions) until `shutdown`.

        Raises:
            RuntimeFailure: what stopped the loop or a companion (`GroupMismatch`: the
                group mixes engines of different saga sets), as itself when it is the
                only failure (several: an ``ExceptionGroup`` of them).
        """
        await self.prepare()
        log.info(
            "engine running sagas %s; domain events from %s; %s delivery",
            ", ".join(f"{n} v{sorted(v)}" for n, v in self.definitions.items()),
            ", ".join(self.event_topics) or "none",
            self.loop.delivery,
        )
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.loop.run())
                for companion in self._companions:
                    tg.create_task(companion.run())
        except ExceptionGroup as group:
            # The TaskGroup wraps even a single failure; unwrapped, `sagas run` prints
            # its message in one line (cli.main) instead of the group's traceback.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            await self._reader.close()
        log.info("engine stopped")

    def shutdown(self) -> None:
        """Stop after the batches in flight; idempotent (safe from a signal handler)."""
        self.loop.stop()
        for companion in self._companions:
            companion.stop()

    async def __aenter__(self) -> Engine:
        self._task = asyncio.create_task(self.run(), name="engine")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self, grace: timedelta = timedelta(seconds=30)) -> None:
        """Shut down and wait for the run task, at most ``grace``, then cancel it."""
        self.shutdown()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=grace.total_seconds())
        if not done:
            log.warning("the engine did not stop within %s: cancelling it", grace)
            task.cancel()
            await asyncio.wait({task})
        if not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # checked not None just above

    async def wait_ready(self, within: timedelta = timedelta(seconds=60)) -> None:
        """Wait until `ready`, or raise TimeoutError (or what the run task raised)."""
        waiter = asyncio.ensure_future(self.ready.wait())
        waits: set[asyncio.Future[Any]] = {waiter}
        if self._task is not None:
            waits.add(self._task)
        done, _ = await asyncio.wait(
            waits, timeout=within.total_seconds(), return_when=asyncio.FIRST_COMPLETED
        )
        if waiter not in done:
            waiter.cancel()
            if self._task is not None and self._task.done():
                self._task.result()
            raise TimeoutError(f"the engine did not own its units within {within}")


def output_topics(definition: Saga[Any]) -> set[str]:
    """The command topics and end-event topics a definition produces to."""
    found: set[str] = set()
    for leaf in definition.leaves:
        if isinstance(leaf, Step):
            found.add(topics.commands(leaf.command.service))
        if leaf.compensation is not None:
            found.add(topics.commands(leaf.compensation.command.service))
    for emit in (definition.on_completed, definition.on_compensated):
        if emit is not None:
            found.add(emit.topic)
    return found
