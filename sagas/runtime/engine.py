"""The engine: the router and the partition workers of a set of definitions.

One `asyncio.TaskGroup` owns both loops; `shutdown` asks them to finish the batch in
flight and return, and is idempotent.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.definition import Saga, Step
from sagas.errors import ConfigurationError
from sagas.runtime import topics
from sagas.runtime.instance_cache import InstanceCache
from sagas.runtime.loop import TransactionalLoop
from sagas.runtime.router import Router, event_topics
from sagas.runtime.store import Store
from sagas.runtime.worker import Clock, SagaWorker
from sagas.settings import EngineSettings
from sagas.telemetry.engine import EngineTelemetry

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Companion(Protocol):
    """A task that runs next to the engine's loops and stops with them (chaos control)."""

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
    """Runs the router and the inbox workers until `shutdown`.

    Args:
        definitions: every version of every saga this engine runs.
        settings: topics, groups, timing.
        bootstrap_servers: Kafka.
        codec, classes: the message contracts.
        store: this process's SQLite store.
        clock: the engine's notion of now (injectable for tests and chaos).
        client_options: extra aiokafka options (security), for every client.
        telemetry: spans and metrics; None (the default) when telemetry is off.
        companions: tasks run and stopped with the loops (e.g. `sagas.chaos.control`).
    """

    def __init__(
        self,
        definitions: Sequence[Saga[Any]],
        settings: EngineSettings,
        bootstrap_servers: str,
        codec: Codec,
        classes: ClassMap,
        store: Store,
        clock: Clock = utcnow,
        client_options: dict[str, Any] | None = None,
        telemetry: EngineTelemetry | None = None,
        companions: Sequence[Companion] = (),
    ) -> None:
        self.definitions = by_name(definitions)
        self._companions = tuple(companions)
        self._telemetry = telemetry
        self.settings = settings
        self._bootstrap = bootstrap_servers
        self._store = store
        self._options = client_options or {}
        self.worker = SagaWorker(
            self.definitions,
            codec,
            classes,
            store,
            clock,
            settings.hold_unknown_for,
            bootstrap_servers,
            self._options,
            settings.topic_prefix,
            telemetry,
            InstanceCache(settings.instance_cache),
        )
        latest = [max(v.items())[1] for v in self.definitions.values()]
        self.router = Router(latest, codec, telemetry)
        self._router_topics = event_topics(latest)
        self._loops = [
            TransactionalLoop(
                bootstrap_servers,
                settings.engine_group,
                [topics.inbox(n) for n in sorted(self.definitions)],
                self.worker,
                f"{settings.transactional_prefix}.engine",
                client_options=self._options,
                max_records=settings.max_batch,
                session_timeout=settings.session_timeout,
                topic_prefix=settings.topic_prefix,
            ),
            TransactionalLoop(
                bootstrap_servers,
                settings.router_group,
                self._router_topics,
                self.router,
                f"{settings.transactional_prefix}.router",
                client_options=self._options,
                max_records=settings.max_batch,
                session_timeout=settings.session_timeout,
                topic_prefix=settings.topic_prefix,
            ),
        ]

        if telemetry is not None:
            telemetry.add_lag_source(self._lag)

    def _lag(self) -> list[tuple[str, int, str, int]]:
        """(topic, partition, group, lag) of every partition the loops own.

        Lag is the last stable offset (read_committed) minus the position after the
        last batch handed to the worker or router (partitions with no batch yet are
        left out). Reads only (metrics thread).
        """
        found: list[tuple[str, int, str, int]] = []
        positions = self._telemetry.positions if self._telemetry else {}
        for loop, group in zip(
            self._loops, (self.settings.engine_group, self.settings.router_group), strict=True
        ):
            consumer = loop.consumer
            if consumer is None:
                continue
            for tp in list(consumer.assignment()):
                end = consumer.last_stable_offset(tp) or consumer.highwater(tp)
                if end is None:
                    continue
                position = positions.get((tp.topic, tp.partition))
                if position is None:
                    continue  # nothing consumed here yet: position unknown
                found.append((tp.topic, tp.partition, group, max(end - position, 0)))
        return found

    async def prepare(self) -> None:
        """Refuse removed versions still in use; create missing topics."""
        for name, versions in self.definitions.items():
            in_use = await self._store.unfinished_versions(name)
            missing = sorted(in_use - set(versions))
            if missing:
                raise ConfigurationError(
                    f"saga {name!r}: versions {missing} still have running instances in "
                    f"{self._store.path}; keep those definitions until they end"
                )
        specs = [
            s for n in self.definitions for s in topics.saga_topics(n, self.settings.partitions)
        ]
        specs += [topics.TopicSpec(t, self.settings.partitions) for t in self._router_topics]
        specs += [topics.TopicSpec(topics.OUTCOMES, self.settings.partitions)]
        specs += [topics.TopicSpec("sagas.router.dlq", 1)]
        specs += [topics.TopicSpec(topics.READ_MODEL_DEAD_LETTERS, 1)]
        specs += [topics.TopicSpec(t, self.settings.partitions) for t in self._command_topics()]
        prefix = self.settings.topic_prefix
        specs = [dataclasses.replace(s, name=prefix + s.name) for s in specs]
        await topics.ensure_topics(
            self._bootstrap, specs, self.settings.replication_factor, self._options
        )

    def _command_topics(self) -> set[str]:
        return {
            t
            for versions in self.definitions.values()
            for d in versions.values()
            for t in output_topics(d)
        }

    async def run(self) -> None:
        await self.prepare()
        log.info(
            "engine running sagas %s; router on %s",
            ", ".join(f"{n} v{sorted(v)}" for n, v in self.definitions.items()),
            ", ".join(self._router_topics),
        )
        try:
            async with asyncio.TaskGroup() as tg:
                for loop in self._loops:
                    tg.create_task(loop.run())
                for companion in self._companions:
                    tg.create_task(companion.run())
        finally:
            await self.worker.close()
        log.info("engine stopped")

    def shutdown(self) -> None:
        """Stop after the batches in flight; idempotent."""
        for loop in self._loops:
            loop.stop()
        for companion in self._companions:
            companion.stop()


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
