"""The dashboard without Kafka: a read model filled by hand, served in-process (ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from sagas.ops.readmodel import OpsStore
from sagas.ops.readmodel.store import Batch
from sagas.ops.web import WebConfig, create_app
from sagas.runtime.store import StoredInstance
from tests.integration.engine_support import two_step_saga
from tests.unit.test_ops_views import compensated_body

XSS = "<script>alert(1)</script>"


async def fill(path: Path) -> None:
    body = compensated_body()
    body["saga"] = "views"
    body["data"]["customer_id"] = XSS
    store = await OpsStore.open(path)
    try:
        await store.apply(
            Batch(
                instances=[
                    StoredInstance(
                        saga_name="views",
                        saga_id=str(body["saga_id"]),
                        partition=0,
                        version=1,
                        state="COMPENSATED",
                        updated_at="2030-01-01T00:00:00.015000Z",
                        body=body,
                        started_at="2030-01-01T00:00:00.000000Z",
                        ended_at="2030-01-01T00:00:00.015000Z",
                    )
                ]
            )
        )
    finally:
        await store.close()


@asynccontextmanager
async def client_for(tmp_path: Path, token: str | None) -> AsyncIterator[httpx.AsyncClient]:
    await fill(tmp_path / "ops.db")
    config = WebConfig(
        ops_db=tmp_path / "ops.db",
        bootstrap_servers=None,
        definitions=[two_step_saga("views")],
        admin_token=token,
    )
    app = create_app(config)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client,
    ):
        yield client


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(tmp_path, None) as c:
        yield c


async def test_pages_escape_values_from_messages(client: httpx.AsyncClient) -> None:
    page = await client.get("/instances/views/order%3Ao-declined")
    assert page.status_code == 200
    assert XSS not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "read-only" in page.text
    assert 'class="act"' not in page.text


async def test_every_page_answers(client: httpx.AsyncClient) -> None:
    for path in (
        "/",
        "/instances",
        "/instances?state=COMPENSATED&q=declined",
        "/definitions/views",
    ):
        assert (await client.get(path)).status_code == 200, path
    listing = await client.get("/instances?q=nothing-like-this")
    assert "no saga matches" in listing.text


async def test_the_api_lists_and_shows(client: httpx.AsyncClient) -> None:
    page = (await client.get("/api/instances", params={"state": "COMPENSATED"})).json()
    assert page["total"] == 1
    shown = (await client.get("/api/instances/views/order:o-declined")).json()
    assert shown["state"] == "COMPENSATED"
    assert (await client.get("/api/instances/views/order:missing")).status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/api/instances", "/api/actions", "/api/events"} <= set(paths)


async def test_security_headers_and_no_cors(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers={"Origin": "http://evil.example"})
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in response.headers


async def test_actions_are_forbidden_without_a_configured_token(client: httpx.AsyncClient) -> None:
    action = {"saga": "views", "saga_id": "order:o-declined", "action": "retry"}
    assert (await client.post("/api/actions", json=action)).status_code == 403
    assert (await client.post("/api/dlq/x:0:0/replay")).status_code == 403


async def test_actions_need_the_right_token(tmp_path: Path) -> None:
    action = {"saga": "views", "saga_id": "order:o-declined", "action": "retry"}
    async with client_for(tmp_path, "s3cret") as client:
        assert (await client.post("/api/actions", json=action)).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert (await client.post("/api/actions", json=action, headers=wrong)).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        # The token is right; without Kafka the action cannot be sent (a clear 400).
        assert (await client.post("/api/actions", json=action, headers=right)).status_code == 400
