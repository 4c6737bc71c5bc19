"""The orders service on the real broker: placing publishes OrderPlaced; the order's
end events set its status; it also runs as ``python -m services.orders``."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope
from sagas.dev.broker import free_port
from sagas.participant import Outbound
from sagas.participant.testing import new_prefix, read_all, running, until
from services import orders
from services.app import app as examples
from services.messages.orders import OrderCancelled, OrderFulfilled, OrderPlaced

pytestmark = pytest.mark.kafka

REQUEST = {
    "customer_id": "c-1",
    "items": [{"sku": "SKU-1", "quantity": 2}, {"sku": "SKU-3", "quantity": 1}],
    "currency": "EUR",
    "shipping_address": {
        "recipient": "Ada",
        "line1": "Main St 1",
        "city": "Berlin",
        "postal_code": "10115",
        "country": "DE",
    },
}


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


async def test_place_and_follow(kafka_bootstrap: str, tmp_path: Path, codec: Codec) -> None:
    prefix = new_prefix()
    events = f"{prefix}orders.events"
    async with running(orders.participant(), kafka_bootstrap, tmp_path, codec, prefix) as svc:
        one = await orders.place_order(svc, {**REQUEST, "order_id": "o-1"})
        two = await orders.place_order(svc, {**REQUEST, "order_id": "o-2"})
        assert one.total == Decimal("130.00")

        placed = await read_all(kafka_bootstrap, events, 2)
        envelopes = [codec.decode(list(r.headers), r.value) for r in placed]
        assert {e.id for e in envelopes} == {"order:o-1:placed", "order:o-2:placed"}
        assert all(isinstance(e.payload, OrderPlaced) for e in envelopes)
        assert {r.key for r in placed} == {b"o-1", b"o-2"}

        now = datetime.now(UTC)
        for end in (
            OrderFulfilled(order_id=one.order_id, shipment_id="s-1", fulfilled_at=now),
            OrderCancelled(order_id=two.order_id, reason="out of stock", cancelled_at=now),
        ):
            envelope = Envelope(
                id=f"{end.order_id}:end",
                type=end.SCHEMA,
                source="/sagas/t",
                time=now,
                payload=end,
            )
            headers, value = codec.encode(envelope)
            await svc.send(
                [Outbound(topic=events, key=end.order_id.encode(), value=value, headers=headers)]
            )

        async def ended() -> bool:
            return (
                await orders.status_of(svc.store.db, "o-1") == "FULFILLED"
                and await orders.status_of(svc.store.db, "o-2") == "CANCELLED"
            )

        await until(ended)
        assert await svc.invariants() == []


async def test_runs_as_a_program_and_takes_orders_over_http(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SERVICE_DATA_DIR": str(tmp_path),
        "SAGAS_TOPIC_PREFIX": new_prefix(),
        "SERVICE_WEB_PORT": str(port),
    }
    log = (tmp_path / "orders.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.orders",
        env=env,
        stdout=log,
        stderr=log,
        stdin=asyncio.subprocess.DEVNULL,
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

            async def healthy() -> bool:
                assert proc.returncode is None, (tmp_path / "orders.log").read_text()
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(healthy)
            created = await client.post("/orders", json={**REQUEST, "order_id": "o-7"})
            assert created.status_code == 201, created.text
            assert created.json() == {"order_id": "o-7", "total": "130.00", "status": "PLACED"}
            bad = await client.post(
                "/orders", json={**REQUEST, "items": [{"sku": "?", "quantity": 1}]}
            )
            assert bad.status_code == 400
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await proc.wait()
        log.close()
    assert code == 0, (tmp_path / "orders.log").read_text()[-2000:]
