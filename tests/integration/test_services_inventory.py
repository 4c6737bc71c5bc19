"""The inventory service on the real broker: rules, idempotency, dead letters, and
read_committed (a command in an aborted transaction is never acted on)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from sagas.contracts.codec import Codec
from sagas.contracts.fake_registry import FakeRegistry
from sagas.contracts.settings import ContractSettings
from sagas.dev.broker import free_port
from sagas.participant.testing import Wire, new_prefix, read_all, running, until
from services import inventory
from services.app import app as examples
from services.messages.inventory import (
    ReserveStock,
    StockItem,
    StockReserved,
    StockUnavailable,
)
from tests.conftest import MakeTopic
from tests.integration.engine_support import committed_count

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


def reserve(order_id: str, sku: str = "SKU-1", quantity: int = 1) -> ReserveStock:
    return ReserveStock(order_id=order_id, items=(StockItem(sku=sku, quantity=quantity),))


async def test_rules_and_idempotency(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    commands = f"{prefix}inventory.commands"
    replies = await make_topic("replies")
    async with (
        running(inventory.participant(), kafka_bootstrap, tmp_path, codec, prefix) as service,
        Wire(kafka_bootstrap, codec, replies) as wire,
    ):
        await wire.send(commands, reserve("o-1", "SKU-3", 11), "order:o-1:reserve:1", "order:o-1")
        await wire.send(commands, reserve("o-2", "SKU-1", 3), "order:o-2:reserve:1", "order:o-2")
        await wire.send(commands, reserve("o-2", "SKU-1", 3), "order:o-2:reserve:1", "order:o-2")
        got = await wire.replies_until(lambda r: len(r) == 3)

        short = next(e for e in got if e.saga_id == "order:o-1")
        assert short.payload == StockUnavailable(
            order_id="o-1", sku="SKU-3", requested=11, available=10
        )
        first, second = [r for r in wire.received if r.key == b"order:o-2"]
        assert (first.value, list(first.headers)) == (second.value, list(second.headers))
        reserved = next(e for e in got if e.saga_id == "order:o-2")
        assert isinstance(reserved.payload, StockReserved)
        assert reserved.id == "order:o-2:reserve:1:reply"
        assert reserved.source == "/services/inventory"
        assert await inventory.stock_of(service.store.db, "SKU-1") == (97, 3)
        assert await service.invariants() == []


async def test_a_poison_message_is_dead_lettered_and_the_service_goes_on(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    commands = f"{prefix}inventory.commands"
    replies = await make_topic("replies")
    async with (
        running(inventory.participant(), kafka_bootstrap, tmp_path, codec, prefix),
        Wire(kafka_bootstrap, codec, replies) as wire,
    ):
        poison_headers = [("ce_type", b"inventory.ReserveStock")]
        await wire.producer.send_and_wait(
            commands, b"\x00garbage", key=b"order:o-9", headers=poison_headers
        )
        await wire.send(commands, reserve("o-3"), "order:o-3:reserve:1", "order:o-3")
        got = await wire.replies_until(lambda r: len(r) == 1)
        assert isinstance(got[0].payload, StockReserved)

        [dead] = await read_all(kafka_bootstrap, f"{prefix}inventory.dlq", 1)
        assert dead.value == b"\x00garbage"
        assert dead.key == b"order:o-9"
        headers = dict(dead.headers)
        assert headers["dlq_reason"] == b"header-missing"
        assert headers["dlq_topic"] == commands.encode()
        assert headers["ce_type"] == b"inventory.ReserveStock"


async def test_a_command_in_an_aborted_transaction_is_never_acted_on(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    commands = f"{prefix}inventory.commands"
    replies = await make_topic("replies")
    async with (
        running(inventory.participant(), kafka_bootstrap, tmp_path, codec, prefix) as service,
        Wire(kafka_bootstrap, codec, replies) as wire,
    ):
        engine = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=f"{prefix}engine"
        )
        await engine.start()
        try:
            # Same partition (same key) so the aborted record precedes the committed one.
            headers, value = wire.encode(reserve("o-4", "SKU-RARE"), "aborted:1", "order:o-4")
            await engine.begin_transaction()
            await engine.send_and_wait(commands, value, key=b"order:x", headers=headers)
            await engine.abort_transaction()
            headers, value = wire.encode(reserve("o-5", "SKU-RARE"), "committed:1", "order:o-5")
            async with engine.transaction():
                await engine.send_and_wait(commands, value, key=b"order:x", headers=headers)
        finally:
            await engine.stop()

        got = await wire.replies_until(lambda r: len(r) >= 1)
        assert [e.id for e in got] == ["committed:1:reply"]
        assert isinstance(got[0].payload, StockReserved)
        assert got[0].payload.order_id == "o-5"
        # SKU-RARE has one unit: had the aborted command been applied, o-5 would be short
        assert await inventory.stock_of(service.store.db, "SKU-RARE") == (0, 1)
        async with service.store.db.execute("SELECT message_id FROM processed") as cursor:
            assert [row[0] for row in await cursor.fetchall()] == ["committed:1"]


async def test_the_health_endpoint_answers_on_localhost(
    kafka_bootstrap: str, tmp_path: Path, codec: Codec
) -> None:
    port = free_port()
    async with (
        running(
            inventory.participant(), kafka_bootstrap, tmp_path, codec, new_prefix(), web_port=port
        ),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client,
    ):
        health = await client.get("/health")
        assert health.status_code == 200
        assert health.json()["service"] == "inventory"
        assert health.json()["status"] == "ok"
        invariants = await client.get("/invariants")
        assert invariants.json() == {"ok": True, "broken": []}


async def test_a_registry_outage_delays_commands_and_dead_letters_none(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path
) -> None:
    """While the schema registry is down the runner hands the commands over again (the
    service keeps running, nothing goes to its dead-letter topic); once it is back
    every command is answered."""
    prefix = new_prefix()
    commands = f"{prefix}inventory.commands"
    replies = await make_topic("replies")
    registry = FakeRegistry()
    contracts = ContractSettings(schema_registry_url="http://registry.test")
    with (
        examples.codec(contracts, transport=registry.transport()) as client,
        examples.codec(contracts, transport=registry.transport()) as codec,
    ):
        await client.prepare()  # the engine registered its schemas long ago
        async with (
            running(inventory.participant(), kafka_bootstrap, tmp_path, codec, prefix) as service,
            Wire(kafka_bootstrap, client, replies) as wire,
        ):
            registry.fail_with = 503  # down: the service has not seen these schemas yet
            for i in range(3):
                await wire.send(
                    commands, reserve(f"o-{i}"), f"order:o-{i}:reserve:1", f"order:o-{i}"
                )
            runner = service.runner
            assert runner is not None

            async def waited() -> bool:
                return runner.registry.waits >= 2

            await until(waited)
            assert service.processor.applied == 0
            registry.fail_with = None  # back
            got = await wire.replies_until(lambda r: len(r) == 3)
            assert all(isinstance(e.payload, StockReserved) for e in got)
            assert service.processor.applied == 3
            assert await committed_count(kafka_bootstrap, f"{prefix}inventory.dlq") == 0
