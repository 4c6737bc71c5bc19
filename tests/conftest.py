"""Shared fixtures. `tests/unit/` never touches them; `tests/integration/` always does."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest

from sagas.dev.broker import DevKafka, free_port
from sagas.settings import DevKafkaSettings, KafkaSettings

pytest_plugins = ["tests.thread_guard"]

MakeTopic = Callable[..., Awaitable[str]]


@pytest.fixture(autouse=True)
def _environment_unchanged() -> Iterator[None]:
    """A test leaves the process's environment as it found it (use monkeypatch): a leaked
    ``KAFKA_BOOTSTRAP_SERVERS`` once pointed every later Kafka test at a dead address."""
    import os

    before = dict(os.environ)
    yield
    after = dict(os.environ)
    changed = sorted(
        k
        for k in before.keys() | after.keys()
        if before.get(k) != after.get(k) and k != "PYTEST_CURRENT_TEST"  # pytest's own
    )
    assert not changed, f"the test changed the environment and left it so: {changed}"


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A running broker for the whole session.

    The cluster named by ``KAFKA_BOOTSTRAP_SERVERS`` when set; otherwise the dev broker
    (the pinned release) on free ports in a temporary folder, stopped at the end.
    """
    external = KafkaSettings().bootstrap_servers
    if external:
        yield external
        return
    settings = DevKafkaSettings()
    port = free_port()
    controller = free_port()
    broker = DevKafka(
        settings.home,
        settings.version,
        port=port,
        controller_port=controller,
        instance_dir=tmp_path_factory.mktemp("kafka"),
        heap=settings.heap,
    )
    broker.start(timeout=settings.start_timeout, quiet=True)
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
async def make_topic(kafka_bootstrap: str) -> AsyncIterator[MakeTopic]:
    """Create uniquely named topics for one test: ``await make_topic("orders", partitions=3)``."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()

    async def create(prefix: str = "t", partitions: int = 1, **configs: str) -> str:
        name = f"{prefix}.{uuid.uuid4().hex[:10]}"
        await admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=configs)]
        )
        return name

    try:
        yield create
    finally:
        await admin.close()
