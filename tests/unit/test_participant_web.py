"""A participant's routes while the schema registry is down (no broker needed).

A route that stores a business change and its event (the orders service's
``POST /orders``) registers the event's schema first, off the event loop; while the
registry cannot be reached it answers 503 with ``Retry-After`` and stores nothing.
"""

from __future__ import annotations

from pathlib import Path

import httpx

from sagas.contracts.settings import ContractSettings
from sagas.participant.service import ParticipantService, prepare_store
from sagas.participant.settings import ServiceSettings
from sagas.participant.web import build_web
from services import orders
from services.app import app as examples
from tests.registry_support import WatchedRegistry

ORDER = {
    "customer_id": "c-1",
    "items": [{"sku": next(iter(orders.DEFAULT_SEED["catalogue"])), "quantity": 1}],
    "shipping_address": {
        "recipient": "A",
        "line1": "1 Road",
        "city": "Town",
        "postal_code": "1000",
        "country": "BE",
    },
}


async def test_a_route_answers_503_while_the_registry_is_down_and_stores_nothing(
    tmp_path: Path,
) -> None:
    watched = WatchedRegistry()
    registry = watched.registry

    contracts = ContractSettings(schema_registry_url="http://registry.test")
    participant = orders.participant()
    with examples.codec(contracts, transport=watched.transport()) as codec:
        service = ParticipantService(
            participant, ServiceSettings(data_dir=tmp_path, web_port=0), codec=codec
        )
        await prepare_store(service.store, participant, None)
        try:
            registry.fail_with = 503
            web = httpx.ASGITransport(app=build_web(service))
            async with httpx.AsyncClient(transport=web, base_url="http://orders.test") as client:
                response = await client.post("/orders", json=ORDER)
            assert response.status_code == 503
            assert response.headers["retry-after"] == "5"
            assert "registry" in response.json()["error"]
            async with service.store.db.execute("SELECT count(*) FROM orders") as cursor:
                assert await cursor.fetchone() == (0,)
        finally:
            await service.store.close()
    assert registry.requests
    assert watched.on_the_loop == []
