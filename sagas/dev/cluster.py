"""Which Kafka to use: the configured cluster, or the local dev broker."""

from __future__ import annotations

from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from sagas.dev.broker import DevKafka
from sagas.errors import ConfigurationError
from sagas.settings import DevKafkaSettings, EngineSettings, KafkaSettings, settings_problem

_S = TypeVar("_S", bound=BaseSettings)


def load_settings(cls: type[_S]) -> _S:
    """``cls()`` built from the environment; a bad variable becomes one line that names it.

    Raises:
        ConfigurationError: a variable does not parse (e.g. ``SAGAS_DEV_KAFKA_PORT=abc``).
    """
    try:
        return cls()
    except ValidationError as exc:
        raise ConfigurationError(str(settings_problem(exc, cls))) from exc


def dev_broker(settings: DevKafkaSettings | None = None, secure: bool = False) -> DevKafka:
    """The dev broker described by the environment (``SAGAS_DEV_KAFKA_*``).

    ``secure`` (or ``SAGAS_DEV_KAFKA_SECURE``): the secure broker, in an instance folder
    of its own, with ACLs for the topic prefix ``SAGAS_TOPIC_PREFIX``.
    """
    s = settings or load_settings(DevKafkaSettings)
    if not (secure or s.secure):
        return DevKafka(s.home, s.version, s.port, s.controller_port, heap=s.heap)
    return DevKafka(
        s.home,
        s.version,
        s.port,
        s.controller_port,
        instance_dir=s.home / f"broker-{s.version}-{s.port}-secure",
        heap=s.heap,
        secure=True,
        topic_prefix=load_settings(EngineSettings).topic_prefix,
    )


def external_bootstrap() -> str | None:
    """``KAFKA_BOOTSTRAP_SERVERS`` when set: then nothing is started locally."""
    return load_settings(KafkaSettings).bootstrap_servers or None
