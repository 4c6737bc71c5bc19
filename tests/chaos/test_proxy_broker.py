"""The dev broker behind the fault proxy: clients go through it, the DIRECT listener does not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.client import AIOKafkaClient

from sagas.chaos.faults import network
from sagas.chaos.proxy import FaultProxy, Mode
from sagas.dev.broker import DevKafka
from sagas.runtime.producers import abandon
from tests.chaos.proxied import network_context, proxied_broker

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevKafka]:
    with proxied_broker(tmp_path_factory.mktemp("proxied-kafka")) as b:
        yield b


@pytest.fixture
async def proxy(broker: DevKafka) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", broker.port, broker.proxy_port) as p:
        yield p


async def _topic(servers: str) -> str:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        name = f"proxied.{uuid.uuid4().hex[:10]}"
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        return name
    finally:
        await admin.close()


async def _produce(servers: str, topic: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, request_timeout_ms=10000)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v)
    finally:
        await producer.stop()


async def _consume(servers: str, topic: str, n: int) -> list[bytes]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=servers, auto_offset_reset="earliest")
    await consumer.start()
    out: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while len(out) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(r.value for r in records)
    finally:
        await consumer.stop()
    return out


async def _advertised(servers: str) -> set[str]:
    client = AIOKafkaClient(bootstrap_servers=servers, request_timeout_ms=5000)
    try:
        await client.bootstrap()
        return {f"{b.host}:{b.port}" for b in client.cluster.brokers()}
    finally:
        await client.close()


async def test_clients_go_through_the_proxy_after_bootstrap(
    broker: DevKafka, proxy: FaultProxy
) -> None:
    assert broker.bootstrap_servers == f"127.0.0.1:{proxy.port}"
    assert broker.direct_servers != broker.bootstrap_servers
    # Each listener advertises its own address: the proxy's, or the direct one.
    assert await _advertised(broker.bootstrap_servers) == {broker.bootstrap_servers}
    assert await _advertised(broker.direct_servers) == {broker.direct_servers}
    topic = await _topic(broker.direct_servers)
    accepted = proxy.accepted
    values = [f"v{i}".encode() for i in range(20)]
    await _produce(broker.bootstrap_servers, topic, values)
    assert await _consume(broker.bootstrap_servers, topic, 20) == values
    assert proxy.accepted >= accepted + 4  # bootstrap + broker connection, per client


async def test_a_blackholed_proxy_leaves_the_direct_listener_working(
    broker: DevKafka, proxy: FaultProxy
) -> None:
    topic = await _topic(broker.direct_servers)
    proxy.blackhole()
    through_proxy = AIOKafkaClient(
        bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=1500
    )
    with pytest.raises(Exception, match="Unable to bootstrap"):
        await through_proxy.bootstrap()
    await through_proxy.close()
    values = [b"direct-1", b"direct-2"]
    accepted = proxy.accepted
    await _produce(broker.direct_servers, topic, values)
    assert await _consume(broker.direct_servers, topic, 2) == values
    assert proxy.accepted == accepted  # the direct clients never touched the proxy
    proxy.heal()
    await _produce(broker.bootstrap_servers, topic, [b"healed"])
    assert await _consume(broker.bootstrap_servers, topic, 3) == [*values, b"healed"]


async def _transaction(producer: AIOKafkaProducer, topic: str, value: bytes) -> None:
    await producer.begin_transaction()
    await producer.send(topic, value)
    await producer.commit_transaction()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", [1, 2])  # seed 1 cuts after the EndTxn, seed 2 before
async def test_commit_blackhole_cuts_a_transaction_commit(
    broker: DevKafka, proxy: FaultProxy, tmp_path: Path, seed: int
) -> None:
    topic = await _topic(broker.direct_servers)
    txn_id = f"cut-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers,
        transactional_id=txn_id,
        request_timeout_ms=5000,
    )
    await producer.start()
    ctx = network_context(proxy, tmp_path, seed)
    fault = asyncio.create_task(network.net_commit_blackhole(ctx))
    committed = 0
    try:
        while True:  # commit until one commit hangs: the blackhole hit it
            async with asyncio.timeout(4):
                await _transaction(producer, topic, f"v{committed}".encode())
            committed += 1
    except TimeoutError:
        pass
    assert proxy.mode is Mode.BLACKHOLE
    await abandon(producer)
    await fault
    assert proxy.mode is Mode.NORMAL
    assert ctx.faults == {"net_commit_blackhole": 1}
    where = "after" if seed == 1 else "before"
    assert ctx.notes == {f"net_commit_blackhole_{where}": 1}
    # A new producer with the same id settles the cut transaction one way or the other.
    again = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, transactional_id=txn_id)
    await again.start()
    try:
        await asyncio.wait_for(_transaction(again, topic, b"after-heal"), 30)
    finally:
        await again.stop()
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.direct_servers,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        async with asyncio.timeout(30):
            while b"after-heal" not in values:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    values.extend(r.value for r in records)
    finally:
        await consumer.stop()
    earlier = [f"v{i}".encode() for i in range(committed)]
    cut = f"v{committed}".encode()
    # The cut commit landed only when the EndTxn reached the broker.
    assert values == [*earlier, *([cut] if where == "after" else []), b"after-heal"]
