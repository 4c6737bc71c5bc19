"""Which Kafka to use: the configured cluster, or the local dev broker."""

from __future__ import annotations

from sagas.dev.broker import DevKafka
from sagas.settings import DevKafkaSettings, KafkaSettings


def dev_broker(settings: DevKafkaSettings | None = None) -> DevKafka:
    """The dev broker described by the environment (``SAGAS_DEV_KAFKA_*``)."""
    s = settings or DevKafkaSettings()
    return DevKafka(s.home, s.version, s.port, s.controller_port, heap=s.heap)


def external_bootstrap() -> str | None:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set: then nothing is started locally."""
    return KafkaSettings().bootstrap_servers or None
