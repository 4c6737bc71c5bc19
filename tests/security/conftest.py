"""The secure dev broker for the security tests: SASL_SSL, mutual TLS, SCRAM users, ACLs.

One broker for the session, on free ports in a temporary folder, with the ACLs of the
shipped sagas and services for the topic prefix `PREFIX`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from sagas.dev.broker import DevKafka, free_port
from sagas.dev.secure import SecureSetup
from sagas.kafka_security import client_options
from sagas.settings import DevKafkaSettings, KafkaSettings

PREFIX = "sec."


@pytest.fixture(scope="session")
def secure_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevKafka]:
    """A running secure dev broker (the pinned release), stopped at the end."""
    settings = DevKafkaSettings()
    broker = DevKafka(
        settings.home,
        settings.version,
        port=free_port(),
        controller_port=free_port(),
        instance_dir=tmp_path_factory.mktemp("secure-kafka"),
        heap=settings.heap,
        secure=True,
        mtls_port=free_port(),
        topic_prefix=PREFIX,
    )
    # A shared CI box can be slow to boot a JVM: allow more than the default here.
    broker.start(timeout=max(settings.start_timeout, timedelta(seconds=240)), quiet=True)
    try:
        yield broker
    finally:
        broker.stop()


def setup_of(broker: DevKafka) -> SecureSetup:
    assert broker.secure is not None
    return broker.secure


def settings_from(env: dict[str, str]) -> KafkaSettings:
    """`KafkaSettings` from ``KAFKA_*`` variables (not from this process's environment)."""
    return KafkaSettings(**{k.removeprefix("KAFKA_").lower(): v for k, v in env.items()})


def user_options(broker: DevKafka, user: str, mechanism: str = "SCRAM-SHA-512") -> dict[str, Any]:
    """aiokafka options of ``user`` over SASL_SSL."""
    env = setup_of(broker).client_env(user, broker.bootstrap_servers, mechanism)
    return client_options(settings_from(env))


def cert_options(broker: DevKafka, user: str) -> dict[str, Any]:
    """aiokafka options of ``user`` over mutual TLS (its client certificate)."""
    return client_options(settings_from(setup_of(broker).mtls_env(user, broker.mtls_servers)))


async def ensure_topics(broker: DevKafka, names: list[str], partitions: int = 3) -> None:
    """Create topics as the admin user (those that exist are left as they are)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=broker.bootstrap_servers, **setup_of(broker).admin_options()
    )
    await admin.start()
    try:
        for name in names:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


def every_password(broker: DevKafka) -> dict[str, str]:
    setup = setup_of(broker)
    return {user: setup.password(user) for user in setup.all_users()}


def read_text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""
