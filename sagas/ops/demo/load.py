"""`sagas load`: the demo's workload, placed on a system that runs elsewhere.

The entry services' HTTP routes take the requests (``POST /orders`` on orders,
``POST /hires`` on hr), as in the demo; then ``sagas.events`` is followed until every
saga placed has ended, and the outcomes are summarised. docker-compose.yml runs it once
as its ``load`` container, against services seeded with the workloads' seed files
(``services/seeds``), so each saga must end as the workload says.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

import httpx
from rich.console import Console

from sagas.dev.outcomes import OutcomeWatcher
from sagas.kafka_security import checked_options
from sagas.ops.demo.summary import render, saga_summary
from sagas.settings import EngineSettings, KafkaSettings
from services.app import app as examples
from services.workload import HIRES, ORDERS, Request, Workload

CONCURRENCY = 8


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    load = sub.add_parser(
        "load",
        help="place the example workload on a running system (docker compose) and wait "
        "for its sagas to end",
    )
    load.add_argument("--orders", type=int, default=100, help="orders to place (default 100)")
    load.add_argument("--hires", type=int, default=20, help="hires to onboard (default 20)")
    load.add_argument(
        "--orders-url", default="http://127.0.0.1:6061", help="the orders service's web address"
    )
    load.add_argument("--hr-url", default="http://127.0.0.1:6065", help="the hr service's")
    load.add_argument(
        "--first",
        type=int,
        default=None,
        help="number of the first request (its order or employee id); default: from the "
        "clock, so that each run places new ones",
    )
    load.add_argument(
        "--rate",
        type=float,
        default=10.0,
        help="requests per second to each entry service (default 10); 0: all at once",
    )
    load.add_argument("--timeout", type=float, default=600, help="seconds to wait for the end")
    load.add_argument("--json", action="store_true", help="print only the summary, as JSON")
    load.set_defaults(handler=main)


async def place(
    url: str,
    requests: Sequence[Request],
    out: list[Request],
    transport: httpx.AsyncBaseTransport | None = None,
    rate: float | None = None,
) -> None:
    """POST each request's body to ``url``; appends those accepted.

    ``rate``: requests per second, each sent at its own time whatever the answers to
    the ones before (a steady load, as in service); None: as fast as ``CONCURRENCY``
    requests at a time go. ``transport``: httpx's, for tests (``httpx.MockTransport``).

    Raises:
        RuntimeError: the service refused one (its answer is in the message).
    """

    async def post(client: httpx.AsyncClient, request: Request) -> None:
        response = await client.post(url, json=request.body)
        if response.status_code != 201:
            raise RuntimeError(f"{url} refused {request.key}: {response.text}")
        out.append(request)

    async with httpx.AsyncClient(timeout=30, transport=transport) as client:
        if rate is None:
            queue = list(requests)

            async def worker() -> None:
                while queue:
                    await post(client, queue.pop(0))

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            return
        loop = asyncio.get_running_loop()
        start = loop.time()
        async with asyncio.TaskGroup() as tg:
            for i, request in enumerate(requests):
                delay = start + i / rate - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)  # the load's schedule: request i at i / rate
                tg.create_task(post(client, request))


def plan(args: argparse.Namespace) -> list[tuple[Workload, str, list[Request]]]:
    """Per workload: where to post, and the requests (numbered from ``--first``)."""
    first = args.first if args.first is not None else int(time.time()) % 100_000 * 1_000
    wanted = [(ORDERS, args.orders_url, args.orders), (HIRES, args.hr_url, args.hires)]
    return [
        (w, f"{url.rstrip('/')}{w.route}", [w.request(first + i) for i in range(n)])
        for w, url, n in wanted
        if n > 0
    ]


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=True)
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        print("error: KAFKA_BOOTSTRAP_SERVERS is not set", file=sys.stderr)
        return 2
    if args.rate < 0:
        print("error: --rate must be >= 0 (0: all at once)", file=sys.stderr)
        return 2
    summary = asyncio.run(_load(plan(args), kafka, args.timeout, console, args.rate or None))
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        render({**summary, "invariants": {}}, Console())
    ok = all(
        s["not_ended"] == 0 and s["unexpected_outcomes"] == 0 for s in summary["sagas"].values()
    )
    return 0 if ok else 1


async def _load(
    work: list[tuple[Workload, str, list[Request]]],
    kafka: KafkaSettings,
    timeout_s: float,
    console: Console,
    rate: float | None = None,
) -> dict[str, Any]:
    bootstrap = kafka.bootstrap_servers or ""
    options = await checked_options(kafka, bootstrap)
    with examples.codec() as codec:
        watcher = OutcomeWatcher(
            bootstrap, codec, EngineSettings().topic_prefix, client_options=options
        )
        placed: dict[str, list[Request]] = {w.saga: [] for w, _, _ in work}
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(watcher.run())
            for workload, url, requests in work:
                pace = f" at {rate:g}/s" if rate else ", all at once"
                console.print(f"placing {len(requests)} on {url}{pace}")
                await place(url, requests, placed[workload.saga], rate=rate)
            ids = {r.saga_id for reqs in placed.values() for r in reqs}
            deadline = time.monotonic() + timeout_s
            while not watcher.ended(ids) and time.monotonic() < deadline:
                await watcher.changed(wait_s=1.0)
            watching.cancel()
    sagas: dict[str, Any] = {}
    for name, requests in placed.items():
        outcomes = [watcher.sagas[r.saga_id] for r in requests if r.saga_id in watcher.sagas]
        summary = saga_summary(outcomes, len(requests))
        summary["unexpected_outcomes"] = sum(
            1
            for r in requests
            if (o := watcher.sagas.get(r.saga_id)) is not None
            and o.state not in ("RUNNING", r.expected)
        )
        sagas[name] = summary
    return {"sagas": sagas}
