"""A broker of its own whose clients go through a `FaultProxy` (its DIRECT listener does not)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sagas.chaos.faults.base import ChaosContext
from sagas.chaos.proxy import FaultProxy
from sagas.dev.broker import DevKafka, free_port
from sagas.settings import DevKafkaSettings


@contextmanager
def proxied_broker(instance_dir: Path) -> Iterator[DevKafka]:
    """Start a broker advertising a proxy port (no proxy runs yet); stop it afterwards."""
    settings = DevKafkaSettings()
    broker = DevKafka(
        settings.home,
        settings.version,
        port=free_port(),
        controller_port=free_port(),
        instance_dir=instance_dir,
        heap=settings.heap,
        proxy_port=free_port(),
        direct_port=free_port(),
    )
    broker.start(timeout=settings.start_timeout, quiet=True)
    try:
        yield broker
    finally:
        broker.stop()


def network_context(proxy: FaultProxy, workdir: Path, seed: int) -> ChaosContext:
    """A context for network faults alone: they touch only the proxy."""
    none: Any = None  # no system, broker or codec
    return ChaosContext(
        system=none,
        broker=none,
        bootstrap_servers=proxy.address,
        direct_servers=proxy.address,
        codec=none,
        prefix="",
        workdir=workdir,
        rng=random.Random(seed),
        proxy=proxy,
        log=lambda line: None,
    )
