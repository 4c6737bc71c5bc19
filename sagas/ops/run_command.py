"""`sagas run [SAGA ...]`: the engine process (router and inbox workers)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Any

from sagas.app import App, load_app
from sagas.definition import Saga
from sagas.errors import ConfigurationError
from sagas.kafka_security import checked_options, describe
from sagas.runtime.engine import Companion, Engine, utcnow
from sagas.runtime.store import Store
from sagas.runtime.transport.kafka import KafkaTransport
from sagas.runtime.worker import Clock
from sagas.settings import EngineSettings, KafkaSettings, TelemetrySettings
from sagas.telemetry import EngineTelemetry, Telemetry, configure_logging, setup

log = logging.getLogger("sagas.run")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser("run", help="run the saga engine (router and inbox workers)")
    run.add_argument("sagas", nargs="*", metavar="SAGA", help="saga names (default: all)")
    run.set_defaults(handler=main)


Extras = Callable[[Store], tuple[Clock, Sequence[Companion]]]
"""Given the opened store, the engine's clock and companions (the chaos entry point's)."""


async def serve(
    app: App,
    definitions: list[Saga[Any]],
    settings: EngineSettings,
    bootstrap: str,
    telemetry: Telemetry | None = None,
    kafka: KafkaSettings | None = None,
    *,
    store_type: type[Store] = Store,
    extras: Extras | None = None,
) -> None:
    """Run an engine until SIGTERM or SIGINT, then let the open transaction finish.

    ``kafka``: the security settings (none: PLAINTEXT); a refused login stops here.
    ``store_type`` and ``extras``: what a wrapper (the chaos entry point) changes.
    """
    options = await checked_options(kafka, bootstrap) if kafka is not None else {}
    codec = app.codec()
    store = await store_type.open(settings.engine_db)
    clock, companions = extras(store) if extras is not None else (utcnow, ())
    hooks = None
    if telemetry is not None and telemetry.enabled:
        hooks = EngineTelemetry(telemetry, settings.topic_prefix)
    transport = KafkaTransport(bootstrap, settings.topic_prefix, options)
    engine = Engine(
        definitions,
        settings,
        transport=transport,
        codec=codec,
        classes=app.classes,
        store=store,
        telemetry=hooks,
        clock=clock,
        companions=companions,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, engine.shutdown)
    try:
        await engine.run()
    finally:
        await store.close()
        codec.close()


def collect_less_often(threshold: int) -> None:
    """Set the first-generation threshold of the cyclic garbage collector (0: leave it).

    The engine keeps a large heap (decoded instances, encoders, the clients' buffers) and
    allocates fast; at Python's default of 700 the collector scanned that whole heap two
    dozen times in one saturation phase of the bench, over 100 ms of CPU each, a quarter
    of the engine's CPU (docs/benchmarks.md, "The garbage collector"). Rarer first-
    generation collections make the older ones rarer too; garbage cycles are still
    collected.
    """
    if threshold:
        _, older, oldest = gc.get_threshold()
        gc.set_threshold(threshold, older, oldest)


def main(args: argparse.Namespace, extras: Extras | None = None, **serving: Any) -> int:
    telemetry_settings = TelemetrySettings()
    configure_logging("sagas-engine", telemetry_settings)
    kafka = KafkaSettings()
    bootstrap = kafka.bootstrap_servers
    if not bootstrap:
        raise ConfigurationError(
            "KAFKA_BOOTSTRAP_SERVERS is not set: point it at Kafka "
            "(e.g. `sagas dev kafka start`, then KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092)"
        )
    settings = EngineSettings()
    collect_less_often(settings.gc_threshold)
    app = load_app(args.app)
    definitions = app.select(list(args.sagas))
    log.info("engine db %s, bootstrap %s, %s", settings.engine_db, bootstrap, describe(kafka))
    telemetry = setup("sagas-engine", telemetry_settings)
    telemetry.install_global()
    try:
        asyncio.run(
            serve(app, definitions, settings, bootstrap, telemetry, kafka, extras=extras, **serving)
        )
    finally:
        telemetry.shutdown()
    return 0
