"""`sagas load` without a system: what it places where (httpx's fake transport)."""

from __future__ import annotations

import json

import httpx
import pytest

from sagas.ops.cli import build_parser
from sagas.ops.demo.load import place, plan
from services.workload import Request


def test_the_plan_numbers_requests_from_first_and_posts_to_the_routes() -> None:
    args = build_parser().parse_args(
        ["load", "--orders", "3", "--hires", "2", "--first", "40", "--hr-url", "http://hr:6065/"]
    )
    [(orders, orders_url, placed), (hires, hr_url, hired)] = plan(args)
    assert (orders.saga, orders_url) == ("order_fulfilment", "http://127.0.0.1:6061/orders")
    assert (hires.saga, hr_url) == ("onboarding", "http://hr:6065/hires")
    assert [r.key for r in placed] == ["o40", "o41", "o42"]
    assert [r.key for r in hired] == ["e40", "e41"]
    assert plan(build_parser().parse_args(["load", "--orders", "0", "--hires", "0"])) == []


async def test_place_posts_every_body_and_stops_at_a_refusal() -> None:
    seen: list[dict[str, object]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        refused = body["order_id"] == "o7"
        return httpx.Response(400 if refused else 201, json={"error": "known id"})

    requests = [
        Request({"order_id": f"o{i}"}, f"o{i}", f"order:o{i}", "COMPLETED", "ok") for i in range(5)
    ]
    out: list[Request] = []
    await place("http://orders/orders", requests, out, httpx.MockTransport(answer))
    assert sorted(r.key for r in out) == [f"o{i}" for i in range(5)]
    assert len(seen) == 5

    bad = [Request({"order_id": "o7"}, "o7", "order:o7", "COMPLETED", "ok")]
    with pytest.raises(RuntimeError, match=r"refused o7: .*known id"):
        await place("http://orders/orders", bad, [], httpx.MockTransport(answer))


async def test_a_rate_sends_each_request_at_its_time_without_waiting_for_answers() -> None:
    import asyncio

    loop = asyncio.get_running_loop()
    sent: list[float] = []
    answered = asyncio.Event()

    async def answer(request: httpx.Request) -> httpx.Response:
        sent.append(loop.time())
        if len(sent) < 4:
            await answered.wait()  # the first answers are late: the schedule goes on
        answered.set()
        return httpx.Response(201)

    requests = [
        Request({"order_id": f"o{i}"}, f"o{i}", f"order:o{i}", "COMPLETED", "ok") for i in range(4)
    ]
    out: list[Request] = []
    start = loop.time()
    await place("http://orders/orders", requests, out, httpx.MockTransport(answer), rate=50.0)
    assert sorted(r.key for r in out) == ["o0", "o1", "o2", "o3"]
    # Request i leaves no earlier than i / rate after the first (never in a burst).
    assert all(t - start >= i / 50.0 - 1e-3 for i, t in enumerate(sorted(sent)))
