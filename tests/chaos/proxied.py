"""A broker of its own whose clients go through a `FaultProxy` (its DIRECT listener does not)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
