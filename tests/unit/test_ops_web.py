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
from tests.integration.engine_support import app_of, two_step_saga
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
async def client_for(
    tmp_path: Path, token: str | None, cors: tuple[str, ...] = ()
) -> AsyncIterator[httpx.AsyncClient]:
    await fill(tmp_path / "ops.db")
    config = WebConfig(
        ops_db=tmp_path / "ops.db",
        bootstrap_servers=None,
        app=app_of(two_step_saga("views")),
        admin_token=token,
        cors_origins=cors,
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


ACTIONS = (
    ("/api/actions", {"saga": "views", "saga_id": "order:o-declined", "action": "retry"}),
    ("/api/actions/bulk", {"where": {"saga": "views"}, "action": "abort", "dry_run": True}),
    ("/api/dlq/sagas.views.dlq:0:0/replay", None),
)


async def test_security_headers_on_every_response(client: httpx.AsyncClient) -> None:
    for path in ("/", "/instances", "/api/instances", "/api/nothing-here", "/static/app.js"):
        response = await client.get(path)
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp, path
        assert "frame-ancestors 'none'" in csp, path
        assert "unsafe-inline" not in csp, path
        assert response.headers["x-content-type-options"] == "nosniff", path
        assert response.headers["x-frame-options"] == "DENY", path
        assert response.headers["referrer-policy"] == "no-referrer", path
        no_store = response.headers.get("cache-control") == "no-store"
        assert no_store is not path.startswith("/static/"), path
    api = await client.get("/api/instances")
    assert api.headers["content-type"] == "application/json"
    assert (await client.get("/")).headers["content-type"].startswith("text/html")


async def test_cors_is_off(client: httpx.AsyncClient) -> None:
    evil = {"Origin": "http://evil.example"}
    for path in ("/", "/api/instances", "/api/health"):
        response = await client.get(path, headers=evil)
        assert "access-control-allow-origin" not in response.headers, path
    preflight = await client.options(
        "/api/actions",
        headers={
            **evil,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
    )
    assert preflight.status_code >= 400
    assert not any(h.startswith("access-control-") for h in preflight.headers)


async def test_cors_allows_only_the_listed_origins(tmp_path: Path) -> None:
    async with client_for(tmp_path, None, cors=("https://ops.example",)) as client:
        ok = await client.get("/api/health", headers={"Origin": "https://ops.example"})
        assert ok.headers["access-control-allow-origin"] == "https://ops.example"
        evil = await client.get("/api/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in evil.headers


@pytest.mark.parametrize(("path", "body"), ACTIONS)
async def test_actions_are_forbidden_without_a_configured_token(
    client: httpx.AsyncClient, path: str, body: dict[str, object] | None
) -> None:
    right = {"Authorization": "Bearer anything"}
    for headers in ({}, right):
        response = await client.post(path, json=body, headers=headers)
        assert response.status_code == 403, (path, response.text)
        assert response.json()["detail"].startswith("actions are disabled")


@pytest.mark.parametrize(("path", "body"), ACTIONS)
async def test_actions_need_the_right_token(
    tmp_path: Path, path: str, body: dict[str, object] | None
) -> None:
    async with client_for(tmp_path, "s3cret") as client:
        for wrong in (
            {},
            {"Authorization": "Bearer nope"},
            {"Authorization": "s3cret"},
            {"Authorization": "Bearer s3cret2"},
            {"Authorization": "Basic s3cret"},
        ):
            response = await client.post(path, json=body, headers=wrong)
            assert response.status_code == 401, (path, wrong)
            assert response.headers["www-authenticate"] == "Bearer"
        right = {"Authorization": "Bearer s3cret"}
        response = await client.post(path, json=body, headers=right)
        # The token is right: what follows is the action's own answer (without Kafka, a
        # dry run lists its targets and anything to send is a clear 400).
        assert response.status_code in (200, 400), response.text
        assert response.status_code == 200 or "Kafka" in response.json()["detail"]


async def test_request_bodies_and_parameters_are_bounded(tmp_path: Path) -> None:
    async with client_for(tmp_path, "s3cret") as client:
        right = {"Authorization": "Bearer s3cret"}
        huge = {"saga": "views", "saga_id": "x", "action": "retry", "reason": "r" * 100_000}
        too_big = await client.post("/api/actions", json=huge, headers=right)
        assert too_big.status_code == 413
        assert too_big.headers["x-content-type-options"] == "nosniff"
        long_id = {"saga": "views", "saga_id": "x" * 501, "action": "retry"}
        assert (await client.post("/api/actions", json=long_id, headers=right)).status_code == 422
        for query in ("offset=99999999999999999999", "since_seconds=1e308", "limit=0"):
            assert (await client.get(f"/api/instances?{query}")).status_code == 422, query
        assert (await client.get("/api/series?window_seconds=0")).status_code == 422
        assert (await client.get("/instances?page=99999999999999999")).status_code == 422
