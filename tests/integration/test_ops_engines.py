"""Operations over two engine processes: the read model sees the sagas of both.

Two in-process engines share a consumer group (separate SQLite files), so each owns
part of the inbox partitions. `sagas list` (through the CLI entry point) and the
dashboard's API must show every saga; `sagas show` must agree with the history the
owning engine stored; an abort from the CLI must be applied and reported.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from sagas.ops.cli import main
from sagas.ops.web import Dashboard, WebConfig
from sagas.runtime.engine import Engine
from sagas.runtime.store import Store
from services.app import app as examples
from tests.browser.ops_support import STALL, StallingParticipants, cli_environment, ops_saga
from tests.integration.engine_support import (
    app_of,
    engine_settings,
    order_placed,
    publish,
    running_engine,
    wait_for,
)

ORDERS = ["a1", "a2", "a3", "b1-declined", "b2-nostock", "b3-declined", f"c1-{STALL}"]


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Run `sagas ARGV` (its own event loop, in a thread) and return (code, stdout)."""
    capsys.readouterr()
    code = await asyncio.to_thread(main, list(argv))
    return code, capsys.readouterr().out


def owns_partitions(engine: Engine) -> bool:
    # The inbox loop is the first; `owned` lists the partitions it holds right now.
    return bool(engine.loop.owned)


async def test_cli_and_api_see_the_sagas_of_both_engines(
    kafka_bootstrap: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    saga = ops_saga("ops_orders")
    settings_a = engine_settings(tmp_path / "a", prefix)
    settings_b = engine_settings(tmp_path / "b", prefix)
    cli_environment(monkeypatch, kafka_bootstrap, prefix, tmp_path / "ops.db")
    codec = examples.codec()
    participants = StallingParticipants(kafka_bootstrap, prefix, codec)
    async with (
        running_engine(kafka_bootstrap, [saga], settings_a) as (engine_a, store_a),
        running_engine(kafka_bootstrap, [saga], settings_b) as (engine_b, store_b),
        asyncio.TaskGroup() as tg,
    ):

        async def both_own() -> bool:
            return owns_partitions(engine_a) and owns_partitions(engine_b)

        await wait_for(both_own, 60, "both engines to own inbox partitions")
        task = tg.create_task(participants.run())
        await publish(
            kafka_bootstrap, f"{prefix}orders.events", codec, [order_placed(o) for o in ORDERS]
        )

        async def settled() -> bool:
            a, b = (
                await store_a.counts_by_state(saga.name),
                await store_b.counts_by_state(saga.name),
            )
            ended = sum(a.get(s, 0) + b.get(s, 0) for s in ("COMPLETED", "COMPENSATED"))
            running = a.get("RUNNING", 0) + b.get("RUNNING", 0)
            return ended == len(ORDERS) - 1 and running == 1

        await wait_for(settled, 90, "six sagas to end and the stalled one to wait")
        local = [await _ids(store_a, saga.name), await _ids(store_b, saga.name)]
        assert all(0 < len(ids) < len(ORDERS) for ids in local), local

        code, output = await cli(capsys, "list", "--json", "--limit", "100")
        assert code == 0
        listed = {item["saga_id"] for item in json.loads(output)["items"]}
        assert listed == {f"order:{o}" for o in ORDERS} == local[0] | local[1]

        await _show_agrees_with_the_engine(capsys, store_a, store_b, saga.name)
        await _dashboard_lists_everything(tmp_path, kafka_bootstrap, prefix)
        await _abort_from_the_cli(capsys, f"order:c1-{STALL}")

        async def compensated() -> bool:
            body = await store_a.get(saga.name, f"order:c1-{STALL}") or await store_b.get(
                saga.name, f"order:c1-{STALL}"
            )
            return body is not None and body["state"] == "COMPENSATED"

        await wait_for(compensated, 60, "the aborted saga to be compensated")
        task.cancel()
    codec.close()


async def _ids(store: Store, saga: str) -> set[str]:
    return {str(b["saga_id"]) async for b in store.instances(saga)}


async def _show_agrees_with_the_engine(
    capsys: pytest.CaptureFixture[str], store_a: Store, store_b: Store, saga: str
) -> None:
    saga_id = "order:b1-declined"
    code, output = await cli(capsys, "show", saga_id, "--json")
    assert code == 0
    shown = json.loads(output)
    stored = await store_a.history(saga, saga_id) or await store_b.history(saga, saga_id)
    assert shown["state"] == "COMPENSATED"
    assert [(e["seq"], e["type"], e["note"]) for e in shown["history"]] == [
        (e["seq"], e["type"], e["note"]) for e in stored
    ]
    steps = {s["name"]: s for s in shown["steps"]}
    assert steps["reserve_stock"]["status"] == "COMPENSATED"
    assert steps["reserve_stock"]["compensation_ended"] is not None
    assert steps["authorize_payment"]["status"] == "FAILED"
    assert "PaymentDeclined" in steps["authorize_payment"]["error"]


async def _dashboard_lists_everything(tmp_path: Path, bootstrap: str, prefix: str) -> None:
    config = WebConfig(
        ops_db=tmp_path / "web-ops.db",
        bootstrap_servers=bootstrap,
        app=app_of(ops_saga("ops_orders")),
        topic_prefix=prefix,
    )
    async with Dashboard(config, port=0) as dash, httpx.AsyncClient(base_url=dash.url) as http:

        async def all_listed() -> bool:
            page: dict[str, Any] = (await http.get("/api/instances", params={"limit": 100})).json()
            return page["total"] == len(ORDERS)

        await wait_for(all_listed, 60, "the dashboard's read model to see every saga")
        counts = (await http.get("/api/sagas")).json()["sagas"]
        assert {c["saga"]: sum(c["counts"].values()) for c in counts}["ops_orders"] == len(ORDERS)
        spec = (await http.get("/openapi.json")).json()
        assert "/api/instances" in spec["paths"]
        refused = await http.post(
            "/api/actions", json={"saga": "ops_orders", "saga_id": "order:a1", "action": "abort"}
        )
        assert refused.status_code == 403  # no admin token configured


async def _abort_from_the_cli(capsys: pytest.CaptureFixture[str], saga_id: str) -> None:
    code, output = await cli(capsys, "abort", "--where", "state=RUNNING", "--dry-run", "--json")
    assert code == 0
    assert [t["saga_id"] for t in json.loads(output)["targets"]] == [saga_id]
    code, output = await cli(
        capsys, "abort", saga_id, "--actor", "alice", "--reason", "customer called", "--json"
    )
    results = json.loads(output)
    assert code == 0, results
    assert results[0]["status"] == "applied"
    assert "Abort by alice: customer called" in results[0]["note"]
