"""A whole app without a broker: the real engine and participants on the in-memory broker.

`MemorySystem` starts, for a team's `sagas.App`:

- a `MemoryBroker` (transactions, ``read_committed``, fencing, consumer groups: see
  docs/architecture.md, "The transport seam");
- the real `Engine` for the app's sagas on `MemoryTransport`, with its SQLite store in
  the given folder;
- each participant's real `Processor` (its handlers, its SQLite store seeded with its
  default seed data, deduplication and tombstones) driven by
  `sagas.participant.memory.MemoryService`: consume, apply, reply, then commit;
- scripted stand-ins (`scripted.py`) for the command types a test fakes: ``replies`` maps a command
  class to a `sagas.testing.Handler` (``reply``, ``script``, ``silent``, as for the
  `sagas.testing.Harness`); the service's processor never sees those commands.

Nothing is mocked: the engine's transactions, the participants' stores and the codec
(the app's schemas, with the embedded registry: no registry server) are the ones
production runs. A test publishes domain events, calls a service's routes, and waits
for conditions with a deadline, never for a fixed time::

    async with MemorySystem(app, tmp_path) as system:
        saga_id = await system.start(order_placed)  # publishes it on orders.events
        instance = await system.ended(saga_id)
        assert instance.state is SagaState.COMPLETED

Time is real: a step that times out takes its timeout. Topic names are logical.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

from sagas.app import App
from sagas.contracts import topics
from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.contracts.settings import ContractSettings
from sagas.machine import SagaInstance, SagaState, instance_from_dict
from sagas.participant.definition import JSONObject
from sagas.participant.memory import MemoryService
from sagas.runtime.engine import Engine
from sagas.runtime.store import Store
from sagas.runtime.transport.memory import MemoryBroker, MemoryTransport
from sagas.runtime.transport.records import TP, OutRecord
from sagas.settings import EngineSettings
from sagas.testing import Handler
from sagas.testing_memory.scripted import Scripted, by_service

DEADLINE = timedelta(seconds=20)
"""How long the waits of `MemorySystem` wait by default before they fail."""

RECHECK = timedelta(milliseconds=20)
"""A wait re-checks its condition at each change of the broker, and at least this often
(the engine writes its store just after a commit: no broker change tells of it)."""

CRASH_WAIT = timedelta(seconds=2)
"""How long a wait whose condition raised gives a crashing system to stop, so that it
reports the crash rather than its consequence (a store closed under the condition)."""


class MemorySystem:
    """An app's engine and participants on one in-memory broker, until the block ends.

    Use ``async with MemorySystem(app, tmp_path) as system:``, or `start_all` and the
    idempotent `stop`.

    Args:
        app: the team's app: its sagas, message classes, schemas and participants.
        directory: where the SQLite files go (the engine's and one per participant).
        replies: scripted answers per command class (`sagas.testing.reply`, ``script``,
            ``silent``); the real service never sees commands of these classes.
        participants: the names of the app's participants to run for real (all of them
            when None); commands of a service not run and not scripted stay unanswered.
        sagas: the names of the sagas the engine runs (all of them when empty).
        partitions: of every topic (``SAGAS_PARTITIONS``).
        codec: the message codec (the caller closes it); by default the app's, with the
            embedded registry, closed by `stop`.

    Raises:
        ValueError: a scripted command class that no saga of the app sends.
        ConfigurationError: a participant or saga name the app does not have.
    """

    def __init__(
        self,
        app: App,
        directory: Path,
        *,
        replies: Mapping[type[Record], Handler] | None = None,
        participants: Collection[str] | None = None,
        sagas: Sequence[str] = (),
        partitions: int = 3,
        codec: Codec | None = None,
    ) -> None:
        self.app = app
        self.directory = directory
        self.definitions = app.select(sagas)
        self.broker = MemoryBroker()
        self._own_codec = codec is None
        self.codec = codec or app.codec(ContractSettings(schema_registry_url=None))
        self.settings = EngineSettings(partitions=partitions, engine_db=directory / "engine.db")
        scripted = by_service(self.definitions, replies or {})
        real = [p.name for p in app.participants] if participants is None else participants
        self.services: dict[str, MemoryService] = {}
        for name in sorted({*real, *scripted}):
            participant = app.participant(name) if name in real else None
            handlers = scripted.get(name)
            self.services[name] = MemoryService(
                name,
                self.broker,
                self.codec,
                participant=participant,
                database=directory / f"{name}.db",
                partitions=partitions,
                intercept=None if handlers is None else Scripted(name, self.codec, handlers),
            )
        self._store: Store | None = None
        self._engine: Engine | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._ids = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------

    async def __aenter__(self) -> MemorySystem:
        await self.start_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start_all(self, within: timedelta = DEADLINE) -> None:
        """Start the engine and the services; return once each owns its partitions.

        Raises:
            TimeoutError: they were not ready ``within``.
        """
        if self._task is not None:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        self._stopping.clear()
        try:
            self._store = await Store.open(self.settings.engine_db)
            for service in self.services.values():
                await service.start()
            self._engine = Engine(
                self.definitions,
                self.settings,
                transport=MemoryTransport(self.broker),
                codec=self.codec,
                classes=self.app.classes,
                store=self._store,
            )
            self._task = asyncio.create_task(self._run(self._engine), name="memory-system")
            ready = [self._engine.ready, *(s.ready for s in self.services.values())]
            await self._until(lambda: all(e.is_set() for e in ready), "the system", within)
        except BaseException:
            await self.stop()
            raise

    async def _run(self, engine: Engine) -> None:
        # One task group owns every background task: a failing service or engine stops
        # the others, and its error reaches the test at its next wait or at `stop`.
        try:
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(engine.run(), name="engine")
                timers = []
                for service in self.services.values():
                    tasks.create_task(service.run(), name=f"service-{service.name}")
                    work = service.timers()
                    if work is not None:
                        timers.append(tasks.create_task(work, name=f"timers-{service.name}"))
                await self._stopping.wait()
                engine.shutdown()
                for service in self.services.values():
                    service.stop()
                for timer in timers:
                    timer.cancel()
        except ExceptionGroup as group:
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise

    async def stop(self, grace: timedelta = timedelta(seconds=10)) -> None:
        """Stop the services and the engine (after what they have in flight), close the
        stores and the codec; idempotent. Raises what stopped any of them early."""
        self._stopping.set()
        task, self._task = self._task, None
        try:
            if task is not None:
                done, _ = await asyncio.wait({task}, timeout=grace.total_seconds())
                if not done:
                    task.cancel()
                    await asyncio.wait({task})
                if not task.cancelled() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # checked not None just above
        finally:
            for service in self.services.values():
                await service.close()
            store, self._store = self._store, None
            if store is not None:
                await store.close()
            if self._own_codec:
                self.codec.close()
                self._own_codec = False

    @property
    def engine(self) -> Engine:
        """The running engine."""
        if self._engine is None:
            raise RuntimeError("the system is not started")
        return self._engine

    def service(self, name: str) -> MemoryService:
        """The service called ``name`` (its ``store`` holds the participant's tables)."""
        return self.services[name]

    # -- inputs ------------------------------------------------------------------------

    async def publish(
        self,
        event: Record,
        *,
        key: str,
        topic: str | None = None,
        event_id: str | None = None,
        source: str = "/testing",
    ) -> str:
        """Publish a domain event, as a service would; returns its ``ce_id``.

        Args:
            event: the event.
            key: its Kafka key (the aggregate id, e.g. the order id).
            topic: by default ``<domain>.events``, the domain being the first part of
                the event's type (``orders.OrderPlaced``: ``orders.events``).
            event_id: its ``ce_id`` (a new one by default).
            source: its ``ce_source``.
        """
        event_id = event_id or f"{source}/{next(self._ids)}"
        envelope = Envelope(
            id=event_id,
            type=event.SCHEMA,
            source=source,
            time=datetime.now(UTC),
            payload=event,
        )
        await self.codec.prepare()
        headers, value = self.codec.encode(envelope)
        topic = topic or topics.events(event.SCHEMA.split(".", 1)[0])
        self.broker.publish(OutRecord(topic, value, key=key.encode(), headers=tuple(headers)))
        return event_id

    async def start(self, event: Record, *, event_id: str | None = None) -> str:
        """Publish an event that starts one saga of the app; returns that saga's id.

        It is keyed by the saga's key (the variable part of its id).

        Raises:
            ValueError: the event starts no saga, or several.
        """
        started = {
            d.name: saga_id
            for d in self.definitions
            if d.start_for(event.SCHEMA) is not None and (saga_id := d.route(event)) is not None
        }
        if len(started) != 1:
            raise ValueError(f"{event.SCHEMA} starts {len(started)} sagas {sorted(started)}")
        [(name, saga_id)] = started.items()
        key = self.engine.partitioning.key(name, saga_id).decode()
        await self.publish(event, key=key, event_id=event_id)
        return saga_id

    async def route(self, service: str, path: str, body: JSONObject) -> JSONObject:
        """Call a service's ``POST`` route, as its web endpoint would."""
        return await self.service(service).handle_route(path, body)

    # -- outcome -----------------------------------------------------------------------

    async def instance(self, saga_id: str) -> SagaInstance[Any] | None:
        """The instance of ``saga_id`` as the engine last stored it (None: not started)."""
        store = self.engine.store
        for name in sorted({d.name for d in self.definitions}):
            body = await store.get(name, saga_id)
            if body is not None:
                definition = self.app.definitions[name][int(body["version"])]
                return instance_from_dict(definition, body)
        return None

    async def state(self, saga_id: str) -> SagaState | None:
        """The state of ``saga_id`` (None: not started)."""
        instance = await self.instance(saga_id)
        return None if instance is None else instance.state

    async def ended(self, saga_id: str, within: timedelta = DEADLINE) -> SagaInstance[Any]:
        """Wait until ``saga_id`` ended (completed, compensated or failed); its instance.

        Raises:
            AssertionError: it had not ended ``within`` (the message says where it is).
        """
        found: list[SagaInstance[Any]] = []

        async def has_ended() -> bool:
            instance = await self.instance(saga_id)
            found[:] = [] if instance is None else [instance]
            return instance is not None and instance.state.ended

        try:
            await self.until(has_ended, f"saga {saga_id} to end", within)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {_describe(found[0] if found else None)}") from None
        return found[0]

    async def until(
        self,
        check: Callable[[], Awaitable[bool]],
        what: str,
        within: timedelta = DEADLINE,
    ) -> None:
        """Wait until ``await check()`` is true (e.g. a service's store says so).

        Raises:
            AssertionError: it was not true ``within``; what stopped the system early.
        """
        await self._until(check, what, within)

    async def _until(
        self, check: Callable[[], Awaitable[bool] | bool], what: str, within: timedelta
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within.total_seconds()
        while True:
            changed = self.broker.changed()
            task = self._task
            if task is None or task.done():
                await self.stop()  # raises what stopped it
                raise RuntimeError(f"the system is not running (waiting for {what})")
            try:
                result = check()
                if result if isinstance(result, bool) else await result:
                    return
            except Exception:
                # A service that crashed closed its store: say why, not what that broke.
                await asyncio.wait({task}, timeout=CRASH_WAIT.total_seconds())
                if task.done():
                    await self.stop()
                raise
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"timed out after {within} waiting for {what}")
            await self.broker.wait(changed, min(left, RECHECK.total_seconds()))

    def records(self, topic: str) -> list[Envelope]:
        """Every committed record of ``topic``, decoded, partition by partition.

        Raises:
            MessageError: a record the codec cannot decode (read dead-letter topics with
                ``broker.records``).
        """
        spec = self.broker.topics().get(topic)
        if spec is None:
            return []
        return [
            self.codec.decode(r.headers, r.value, topic=r.topic, partition=r.partition)
            for p in range(spec.partitions)
            for r in self.broker.records(TP(topic, p))
        ]


def _describe(instance: SagaInstance[Any] | None) -> str:
    if instance is None:
        return "it never started"
    steps = ", ".join(f"{s.name}={s.status}" for s in instance.steps)
    return f"it is {instance.state} ({instance.reason}); steps: {steps}"
