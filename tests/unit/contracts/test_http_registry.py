"""The HTTP registry client against the in-process fake Confluent registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sagas.contracts import errors
from sagas.contracts.fake_registry import FakeRegistry
from sagas.contracts.http_registry import HttpRegistry
from sagas.contracts.record import Envelope
from sagas.contracts.schemas import SchemaTree
from sagas.contracts.settings import ContractSettings
from services.app import app as examples
from services.messages.orders import OrderCancelled
from tests.unit.contracts.strategies import sample


def test_register_is_idempotent_and_lookup_is_cached(tree: SchemaTree) -> None:
    fake = FakeRegistry()
    schema = tree.current["orders.OrderCancelled"]
    with HttpRegistry("http://registry", transport=fake.transport()) as registry:
        first = registry.register(schema.name, schema.raw)
        assert registry.register(schema.name, schema.raw) == first
        assert registry.lookup(first).name == "orders.OrderCancelled"
        assert registry.lookup(first).name == "orders.OrderCancelled"
    assert fake.requests == [
        "POST /subjects/orders.OrderCancelled/versions",
        "GET /schemas/ids/1",
    ]
    assert fake.subjects == {"orders.OrderCancelled": [1]}


def test_errors_are_translated() -> None:
    fake = FakeRegistry()
    with HttpRegistry("http://registry", transport=fake.transport()) as registry:
        with pytest.raises(errors.UnknownSchemaError):
            registry.lookup(99)
        fake.fail_with = 503
        with pytest.raises(errors.RegistryError) as caught:
            registry.lookup(98)
        assert caught.value.retryable


def test_codec_over_http_registry_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SCHEMA_REGISTRY_URL", "http://registry.test:8081")
    fake = FakeRegistry(first_id=100)
    payload = sample(OrderCancelled)
    sent = Envelope(
        id="m",
        type=payload.SCHEMA,
        source="/t",
        time=datetime(2024, 1, 1, tzinfo=UTC),
        payload=payload,
    )
    with examples.codec(ContractSettings(), transport=fake.transport()) as codec:
        headers, value = codec.encode(sent)
        assert int.from_bytes(value[1:5], "big") == 100
    # A second process (fresh caches) reads it through the registry.
    with examples.codec(ContractSettings(), transport=fake.transport()) as reader:
        assert reader.decode(headers, value) == sent
    assert "GET /schemas/ids/100" in fake.requests
