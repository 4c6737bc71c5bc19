"""Run a `Participant` on Kafka: its store, its consuming loop, its web endpoint.

The default runner is `sagas.participant.runner.KafkaRunner` on aiokafka: a consumer of
the service's group with ``read_committed`` (an aborted or fenced engine transaction's
commands are never delivered), an idempotent producer, replies sent and acknowledged
before the command's offset is committed; a command delivered again replays its stored
reply (see `Processor`). ``SERVICE_RUNNER=faust`` runs the same processing as
faust-streaming agents instead (`sagas.participant.app`), which `sagas bench` measures
against the default (docs/benchmarks.md says what each costs on a step's path).

read_committed under faust: faust has no setting for the consumer's isolation level. It
configures its aiokafka consumer with ``isolation_level="read_committed"`` exactly when
the app runs "in a transaction", i.e. ``processing_guarantee="exactly_once"`` and
``app.in_worker`` (faust/transport/drivers/aiokafka.py, ``_create_worker_consumer``),
so that runner is configured exactly_once and refuses to start otherwise. Its replies
go out through faust's plain (idempotent, non-transactional) producer, awaited one by
one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from sagas.contracts import topics
from sagas.contracts.codec import Codec
from sagas.contracts.errors import RegistryError
from sagas.contracts.outage import RegistryOutage
from sagas.contracts.record import Envelope, Record
from sagas.kafka_security import checked_options
from sagas.participant.definition import JSONObject, Participant
from sagas.participant.processor import Incoming, Processor, ProcessorFactory
from sagas.participant.runner import RETRY_PAUSE, KafkaRunner
from sagas.participant.settings import ServiceSettings
from sagas.participant.store import Outbound, Store
from sagas.participant.timers import run_timers
from sagas.participant.web import WebEndpoint
from sagas.runtime.topics import wait_until_ready
from sagas.settings import KafkaSettings
from sagas.telemetry.participant import ParticipantTelemetry

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "127.0.0.1:9092"


async def prepare_store(store: Store, participant: Participant, seed_file: Path | None) -> Store:
    """Open ``store`` with the participant's tables, seeding a new one; returns it.

    Seed data comes from ``seed_file`` (JSON) when given, else the participant's
    default; it is applied once, in one transaction, on a store that was never seeded.
    """
    await store.open(participant.schema)
    if participant.seed is None:
        return store
    async with store.db.execute("SELECT 1 FROM meta WHERE key = 'seeded'") as cursor:
        if await cursor.fetchone() is not None:
            return store
    data: Any = participant.default_seed
    if seed_file is not None:
        data = json.loads(await asyncio.to_thread(seed_file.read_text, encoding="utf-8"))
    async with store.transaction() as db:
        await participant.seed(db, data)
        await db.execute("INSERT INTO meta VALUES ('seeded', 'yes')")
    return store


class ParticipantService:
    """One running participant: store, codec, faust app.

    Use ``async with ParticipantService(...)`` or `start` / `stop`; `run` serves until
    `stop` is called (e.g. from a signal handler) or faust stops on its own.

    Args:
        participant: the service definition.
        settings: the service settings (``ServiceSettings()`` reads the environment).
        bootstrap: Kafka bootstrap servers, comma-separated.
        codec: the message codec (`sagas.App.codec`); the caller closes it.
        telemetry: spans and metrics (None when telemetry is off).
        kafka: TLS/SASL settings of every Kafka client (None: PLAINTEXT); a refused
            login stops `start` with `sagas.kafka_security.KafkaAccessError`.
        processor_factory: builds the `Processor` (the default: the class itself); the
            seam through which the chaos entry point puts in its faulty subclass.
    """

    def __init__(
        self,
        participant: Participant,
        settings: ServiceSettings,
        *,
        bootstrap: str | None = None,
        codec: Codec,
        telemetry: ParticipantTelemetry | None = None,
        kafka: KafkaSettings | None = None,
        processor_factory: ProcessorFactory = Processor,
    ) -> None:
        self.participant = participant
        self.kafka = kafka
        self.client_options: dict[str, Any] = {}
        self.telemetry = telemetry
        self.settings = settings
        self.bootstrap = bootstrap or DEFAULT_BOOTSTRAP
        self.codec = codec
        self.store = Store(settings.database(participant.name))
        self.processor = processor_factory(
            participant,
            self.store,
            self.codec,
            topic_prefix=settings.topic_prefix,
            telemetry=telemetry,
        )
        self.app: Any = None
        """The faust app, with ``SERVICE_RUNNER=faust``."""
        self.runner: KafkaRunner | None = None
        """The aiokafka loop (the default runner)."""
        self._task: asyncio.Task[None] | None = None
        self._web: WebEndpoint | None = None
        self._timers: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._outbox = asyncio.Lock()
        """Held by `on_start` and `after_command` hooks: one at a time, so an outbox they
        flush is never read twice before it is marked sent."""
        self._started = False

    # -- names -------------------------------------------------------------------------

    def topic(self, name: str) -> str:
        """A topic name with the configured prefix."""
        return topics.physical(self.settings.topic_prefix, name)

    @property
    def commands_topic(self) -> str:
        return self.topic(topics.commands(self.participant.name))

    @property
    def web_port(self) -> int:
        """The port of the health endpoint (0: none)."""
        return self.settings.port(self.participant.web_port)

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Open the store (seeding it once), create missing topics, start consuming, and
        serve the web endpoint; returns once the service consumes."""
        if self._started:
            return
        if self.kafka is not None:
            # Before anything is opened: a refused login must leave nothing running (an
            # open SQLite connection's thread would keep the process alive).
            self.client_options = await checked_options(self.kafka, self.bootstrap)
        self._started = True
        try:
            await prepare_store(self.store, self.participant, self.settings.seed_file)
            await self._create_topics()
            if self.settings.runner == "faust":
                await self._start_faust()
            else:
                await self._start_runner()
            if self.web_port > 0:
                self._web = WebEndpoint(self, self.settings.web_host, self.web_port)
                await self._web.start()
            if self.participant.timers:
                self._timers = asyncio.create_task(
                    run_timers(self.participant, self.store, self.processor.clock),
                    name=f"{self.participant.name}-timers",
                )
            if self.participant.on_start is not None:
                async with self._outbox:
                    await self.participant.on_start(self)
        except BaseException:
            await self.stop()
            raise
        log.info("%s: consuming %s", self.participant.name, self.commands_topic)

    async def _start_runner(self) -> None:
        consumed = [self.commands_topic] if self.participant.handlers else []
        consumed += sorted({self.topic(s.topic) for s in self.participant.subscriptions})
        runner = KafkaRunner(
            self.bootstrap,
            self.settings.group(self.participant.name),
            consumed,
            self.handle_batch,
            after_batch=self._after_batch,
            client_options=self.client_options,
        )
        await runner.start()
        self.runner = runner
        self._task = asyncio.create_task(runner.run(), name=f"{self.participant.name}-runner")

    async def _start_faust(self) -> None:
        from sagas.participant.app import build_app

        self.app = build_app(self)
        # faust enables transactions (and with them read_committed) only in a worker.
        self.app.in_worker = True
        if not self.app.in_transaction:
            raise RuntimeError("faust would consume read_uncommitted; refusing to start")
        await self.app.start()

    async def stop(self, grace: timedelta = timedelta(seconds=10)) -> None:
        """Stop consuming (after the batch in flight), the web endpoint, and close the
        store; idempotent, each part bounded by ``grace``."""
        self._stopping.set()
        if not self._started:
            return
        self._started = False
        web, self._web = self._web, None
        timers, self._timers = self._timers, None
        if timers is not None:
            timers.cancel()
            await asyncio.wait({timers})
        task, self._task = self._task, None
        # The runner and the faust app stay reachable until they stopped: the batch or
        # the agent event in flight still sends its replies (and an outbox its events)
        # through them.
        try:
            if web is not None:
                await web.stop()
            if self.runner is not None:
                self.runner.stop()
                if task is not None:
                    await asyncio.wait({task}, timeout=grace.total_seconds())
                    if not task.done():
                        task.cancel()
                    await asyncio.wait({task})
                await self.runner.close()
            if self.app is not None:
                await asyncio.wait_for(self.app.stop(), grace.total_seconds())
        finally:
            self.runner = self.app = None
            await self.store.close()
        if task is not None and not task.cancelled() and task.exception() is not None:
            raise task.exception()  # type: ignore[misc]  # checked not None just above

    async def run(self) -> None:
        """Start, serve until `stop` is requested (or the consuming loop ends), then stop."""
        await self.start()
        try:
            waits: list[asyncio.Future[Any]] = [asyncio.ensure_future(self._stopping.wait())]
            if self._task is not None:
                waits.append(asyncio.ensure_future(asyncio.shield(self._task)))
            if self.app is not None:
                waits.append(asyncio.ensure_future(self.app.wait_until_stopped()))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for wait in waits:
                    wait.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await wait
        finally:
            await self.stop()

    def request_stop(self) -> None:
        """Ask `run` to stop (safe from a signal handler)."""
        self._stopping.set()

    async def __aenter__(self) -> ParticipantService:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # -- producing ---------------------------------------------------------------------

    async def send(self, records: list[Outbound]) -> None:
        """Produce ``records`` one by one, each acknowledged before the next."""
        for r in records:
            span = self.telemetry.published(r) if self.telemetry is not None else None
            if self.runner is not None:
                producer = self.runner.producer
                await producer.send_and_wait(r.topic, r.value, r.key, None, None, r.headers)
            else:
                await self.app.producer.send_and_wait(
                    r.topic, r.key, r.value, None, None, r.headers
                )
            if span is not None:
                span.end()

    async def publish(self, event: Record, *, domain: str, key: str, event_id: str) -> None:
        """Publish a domain event to ``<domain>.events`` with CloudEvents headers.

        Raises:
            RegistryError: the schema registry could not be reached (nothing was sent).
        """
        envelope = Envelope(
            id=event_id,
            type=event.SCHEMA,
            source=self.participant.source,
            time=self.processor.clock(),
            payload=event,
        )
        # Writer schemas are registered off the event loop (the registry client's
        # retries sleep): a publish before the first poll must not stall the service.
        await self.codec.prepare()
        headers, value = self.codec.encode(envelope)
        topic = self.topic(topics.events(domain))
        await self.send([Outbound(topic=topic, key=key.encode(), value=value, headers=headers)])

    async def invariants(self) -> list[str]:
        """The broken business invariants of the store (empty: all hold)."""
        check = self.participant.invariants
        return [] if check is None else await check(self.store.db)

    # -- setup -------------------------------------------------------------------------

    def _topics_needed(self) -> list[str]:
        names = [self.topic(topics.service_dead_letters(self.participant.name))]
        if self.participant.handlers:
            names.append(self.commands_topic)
        names += sorted({self.topic(s.topic) for s in self.participant.subscriptions})
        names += sorted({self.topic(t) for t in self.participant.publishes} - set(names))
        return names

    async def _create_topics(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, **self.client_options)
        await admin.start()
        try:
            for name in self._topics_needed():
                new = NewTopic(
                    name, self.settings.topic_partitions, self.settings.replication_factor
                )
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics([new])
            # faust ignores a subscribed topic missing from the metadata until the next
            # rebalance: the service would never see its commands (seen in the demo).
            await wait_until_ready(admin, self._topics_needed())
        finally:
            await admin.close()

    async def handle_route(self, path: str, body: JSONObject) -> JSONObject:
        """Run the service's ``POST`` route ``path``."""
        return await self.participant.routes[path](self, body)

    async def handle(self, topic: str, record: Incoming) -> list[Outbound]:
        """Apply one consumed record; return what to produce (the caller sends it)."""
        if topic != self.commands_topic:
            return await self.processor.event(record)
        return await self.processor.command(record)

    def handle_batch(self, records: Sequence[Incoming]) -> AsyncIterator[list[list[Outbound]]]:
        """Apply one poll's records (`Processor.batches`): what to produce for each, one
        list per committed transaction."""
        return self.processor.batches(records)

    async def _after_batch(self) -> None:
        if self.participant.after_command is not None:
            async with self._outbox:
                await self.participant.after_command(self)

    async def process(self, topic: str, record: Incoming) -> None:
        """Apply one record and produce what it yields, acknowledged (the faust agents).

        While the schema registry cannot be reached the record waits here (the agent's
        next records wait behind it), handed over again every `RETRY_PAUSE`."""
        outage = RegistryOutage(log, "", "commands wait")
        while True:
            try:
                outs = await self.handle(topic, record)
                break
            except RegistryError as exc:
                outage.waited(exc)
                await asyncio.sleep(RETRY_PAUSE.total_seconds())  # backoff while it is down
        outage.answered()
        await self.send(outs)
        if topic == self.commands_topic:
            await self._after_batch()
