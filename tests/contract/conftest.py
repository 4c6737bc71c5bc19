"""The contract suite runs every test against each `Transport`: in memory and on Kafka.

``-m "not kafka"`` runs the in-memory half alone. The Kafka half uses the session
broker (`kafka_bootstrap`) with a topic prefix of its own for each test.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from sagas.runtime.transport.base import Transport
from sagas.runtime.transport.kafka import KafkaTransport
from sagas.runtime.transport.memory import MemoryTransport


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def bootstrap(kind: str, request: pytest.FixtureRequest) -> str | None:
    """The session broker, started only when a Kafka test runs."""
    return str(request.getfixturevalue("kafka_bootstrap")) if kind == "kafka" else None


@pytest.fixture
async def transport(bootstrap: str | None) -> AsyncIterator[Transport]:
    """A fresh transport: a new in-memory broker, or Kafka under a new topic prefix."""
    made: Transport
    if bootstrap is None:
        made = MemoryTransport()
    else:
        made = KafkaTransport(bootstrap, prefix=f"contract.{uuid.uuid4().hex[:8]}.")
    try:
        yield made
    finally:
        await made.close()
