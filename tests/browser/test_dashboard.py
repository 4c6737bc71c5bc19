"""The dashboard in headless Chromium, against a real engine and scripted participants.

One engine runs three orders: one completes (its customer id holds a ``<script>``),
one is compensated, one stalls in a long retry backoff. The test follows the pages an
operator would, aborts the stalled saga with the admin token, watches it compensate
through the live updates, and checks that a dashboard without a token is read-only.
Screenshots of every page go to ``artifacts/browser/``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, Page, expect

from sagas.ops.web import Dashboard, WebConfig
from sagas.runtime.store import Store
from services.app import app as examples
from tests.browser.ops_support import STALL, StallingParticipants, ops_saga
from tests.integration.engine_support import (
    app_of,
    engine_settings,
    order_placed,
    publish,
    running_engine,
    wait_for,
)

pytestmark = pytest.mark.browser

TOKEN = "test-admin-token"
XSS = "<script>window.__xss = 1</script>"
SAGA = "ops_web"
DONE, UNDONE, STALLED = "order:w1", "order:w2-declined", f"order:w3-{STALL}"


@dataclass
class World:
    store: Store
    prefix: str
    bootstrap: str
    tmp: Path


@asynccontextmanager
async def world(bootstrap: str, tmp: Path) -> AsyncIterator[World]:
    """An engine with three sagas settled: completed, compensated, stalled (RUNNING)."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    saga = ops_saga(SAGA)
    codec = examples.codec()
    participants = StallingParticipants(bootstrap, prefix, codec)
    async with (
        running_engine(bootstrap, [saga], engine_settings(tmp, prefix)) as (_engine, store),
        asyncio.TaskGroup() as tg,
    ):
        task = tg.create_task(participants.run())
        orders = [
            replace(order_placed("w1"), customer_id=XSS),
            order_placed("w2-declined"),
            order_placed(f"w3-{STALL}"),
        ]
        await publish(bootstrap, f"{prefix}orders.events", codec, orders)
        await _poison(bootstrap, f"{prefix}sagas.{SAGA}.inbox")

        async def settled() -> bool:
            states = [((await store.get(SAGA, i)) or {}).get("state") for i in (DONE, UNDONE)]
            stalled = await store.get(SAGA, STALLED)
            waiting = stalled is not None and stalled["steps"][1]["status"] == "RETRYING"
            return states == ["COMPLETED", "COMPENSATED"] and waiting

        await wait_for(settled, 60, "the three sagas to settle")
        yield World(store, prefix, bootstrap, tmp)
        task.cancel()
    codec.close()


async def _poison(bootstrap: str, inbox: str) -> None:
    """A record the engine cannot decode: it goes to the dead-letter topic."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            inbox, b"\x00not avro", key=b"order:zz", headers=[("ce_type", b"nope")]
        )
    finally:
        await producer.stop()


def dashboard(w: World, name: str, token: str | None) -> Dashboard:
    config = WebConfig(
        ops_db=w.tmp / f"{name}.db",
        bootstrap_servers=w.bootstrap,
        topic_prefix=w.prefix,
        app=app_of(ops_saga(SAGA)),
        admin_token=token,
        jaeger_url="http://127.0.0.1:16686",
    )
    return Dashboard(config, port=0)


def instance_url(base: str, saga_id: str) -> str:
    return f"{base}/instances/{SAGA}/{quote(saga_id, safe='')}"


async def open_page(browser: Browser, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return page


async def test_operator_follows_a_saga_and_aborts_a_stalled_one(
    kafka_bootstrap: str, tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    errors: list[str] = []
    async with world(kafka_bootstrap, tmp_path) as w, dashboard(w, "admin", TOKEN) as dash:
        page = await open_page(browser, errors)
        await page.goto(dash.url + "/")
        # The read model catches up in the background; the page follows by itself.
        await expect(page.locator(f'[data-count="{SAGA}:RUNNING"]')).to_have_text(
            "1", timeout=60_000
        )
        await expect(page.locator(f'[data-count="{SAGA}:COMPLETED"]')).to_have_text("1")
        await page.screenshot(path=artifacts / "overview.png", full_page=True)

        await page.click("nav >> text=instances")
        await page.click(f"a.instance-link >> text={UNDONE}")
        await expect(page.locator("#state")).to_have_text("COMPENSATED")
        await _agrees_with_the_store(page, w.store, UNDONE)
        await page.screenshot(path=artifacts / "instance.png", full_page=True)

        await page.goto(instance_url(dash.url, DONE))
        await expect(page.locator("pre.data")).to_contain_text(XSS)
        assert await page.evaluate("window.__xss") is None
        assert await page.locator("script").count() == 1  # only /static/app.js

        await page.goto(instance_url(dash.url, STALLED))
        await expect(page.locator("#state")).to_have_text("RUNNING")
        await page.fill("#token", TOKEN)
        await page.fill("#reason", "customer cancelled by phone")
        await page.click('button[data-action="abort"]')
        await expect(page.locator("#action-result")).to_contain_text(
            "abort applied", timeout=40_000
        )
        await expect(page.locator("#state")).to_have_text("COMPENSATED", timeout=40_000)
        await expect(page.locator("#history")).to_contain_text("Abort by dashboard")
        await page.screenshot(path=artifacts / "instance-aborted.png", full_page=True)

        await page.goto(f"{dash.url}/definitions/{SAGA}")
        await expect(page.locator(".diagram svg")).to_be_visible()
        await page.screenshot(path=artifacts / "definition.png", full_page=True)

        await page.goto(f"{dash.url}/dlq")
        await page.click("td >> a")
        await expect(page.locator("dl.summary")).to_contain_text(f"sagas.{SAGA}.inbox")
        await page.click("button.replay")
        await expect(page.locator("#action-result")).to_contain_text("replayed to")
        await page.screenshot(path=artifacts / "dead-letter.png", full_page=True)
        await _api_refuses_a_wrong_token(dash.url)
    assert not errors, errors


async def _agrees_with_the_store(page: Page, store: Store, saga_id: str) -> None:
    stored = await store.history(SAGA, saga_id)
    rows = page.locator("#history tbody tr")
    await expect(rows).to_have_count(len(stored))
    for i, entry in enumerate(stored):
        await expect(rows.nth(i)).to_contain_text(entry["note"])
    body = await store.get(SAGA, saga_id)
    assert body is not None
    for step in body["steps"]:
        row = page.locator(f'tr[data-step="{step["name"]}"] td.status')
        await expect(row).to_have_text(step["status"])


async def _api_refuses_a_wrong_token(base: str) -> None:
    action = {"saga": SAGA, "saga_id": DONE, "action": "pause"}
    async with httpx.AsyncClient(base_url=base) as http:
        missing = await http.post("/api/actions", json=action)
        wrong = await http.post(
            "/api/actions", json=action, headers={"Authorization": "Bearer nope"}
        )
    assert (missing.status_code, wrong.status_code) == (401, 401)


async def test_without_a_token_the_dashboard_is_read_only(
    kafka_bootstrap: str, tmp_path: Path, browser: Browser, artifacts: Path
) -> None:
    errors: list[str] = []
    async with world(kafka_bootstrap, tmp_path) as w, dashboard(w, "public", None) as dash:
        page = await open_page(browser, errors)
        await page.goto(dash.url + "/instances")
        await expect(page.locator("a.instance-link")).to_have_count(3, timeout=60_000)
        await page.screenshot(path=artifacts / "instances.png", full_page=True)
        await page.goto(instance_url(dash.url, STALLED))
        await expect(page.locator("#state")).to_have_text("RUNNING")
        await expect(page.locator("#readonly-note")).to_be_visible()
        assert await page.locator("button.act").count() == 0
        assert await page.locator("#token").count() == 0
        await page.screenshot(path=artifacts / "instance-read-only.png", full_page=True)
        async with httpx.AsyncClient(base_url=dash.url) as http:
            refused = await http.post(
                "/api/actions",
                json={"saga": SAGA, "saga_id": STALLED, "action": "abort"},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            headers = (await http.get("/")).headers
        assert refused.status_code == 403
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert "access-control-allow-origin" not in headers
    assert not errors, errors
