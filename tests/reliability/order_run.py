"""A run of the order fulfilment saga with real processes: engines and four services.

Everything the checks look at comes from the services' own SQLite files and from the
outcome events on `sagas.events`, never from an engine's local state.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sagas.contracts.codec import Codec
from sagas.dev.outcomes import OutcomeWatcher
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from services.app import app as examples
from services.audit import Violations, audit_orders, broken_invariants
from services.workload import ORDERS

SERVICES = ORDERS.services
ENGINE_SAGAS = (ORDERS.saga,)
"""The engines run the order saga only: these runs are about it, and fewer inbox
partitions make rebalances shorter (see docs/guarantees.md, rebalance storms)."""


def order_request(i: int) -> tuple[dict[str, Any], str]:
    """Order ``i`` (see `services.workload.order_request`) and how its saga must end."""
    request = ORDERS.request(i)
    return request.body, request.expected


@dataclass
class OrderRun:
    system: LocalSystem
    codec: Codec
    watcher: OutcomeWatcher
    expected: dict[str, str] = field(default_factory=dict)
    duplicated: int = 0

    @property
    def layout(self) -> SystemLayout:
        return self.system.layout

    def saga_ids(self) -> set[str]:
        return {f"order:{o}" for o in self.expected}

    def ended(self) -> int:
        return sum(
            1 for i in self.saga_ids() if (o := self.watcher.sagas.get(i)) and o.state != "RUNNING"
        )

    async def place(self, count: int, start: int = 0, concurrency: int = 8) -> None:
        """Place orders through the orders service's HTTP API."""
        queue = list(range(start, start + count))

        async def worker(client: httpx.AsyncClient) -> None:
            while queue:
                request, outcome = order_request(queue.pop(0))
                response = await client.post(
                    f"{self.system.web_url('orders')}/orders", json=request
                )
                assert response.status_code == 201, response.text
                self.expected[str(request["order_id"])] = outcome

        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))

    def assert_processes_alive(self) -> None:
        """Fail at once, with its log, when a process died that the test did not kill."""
        supervisor = self.system.supervisor
        for name, code in supervisor.unexpected_exits().items():
            raise AssertionError(f"{name} exited with {code}:\n{supervisor.log_tail(name)}")

    async def wait_for_progress(self, count: float, deadline_s: float = 300) -> None:
        """Wait until ``count`` of the placed sagas have ended."""
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while self.ended() < count:
            self.assert_processes_alive()
            if loop.time() > end:
                raise AssertionError(f"only {self.ended()} of {count} sagas ended in {deadline_s}s")
            await self.watcher.changed(wait_s=1.0)

    async def wait_until_ended(self, deadline_s: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while self.ended() < len(self.expected):
            self.assert_processes_alive()
            if loop.time() > end:
                stuck = sorted(
                    self.saga_ids()
                    - {i for i, o in self.watcher.sagas.items() if o.state != "RUNNING"}
                )
                raise AssertionError(f"{len(stuck)} sagas did not end, e.g. {stuck[:5]}")
            await self.watcher.changed(wait_s=1.0)

    def outcomes(self) -> dict[str, str]:
        return {o: self.watcher.sagas[f"order:{o}"].state for o in self.expected}

    async def audit(self, deadline_s: float = 60) -> tuple[Violations, Violations]:
        """Audit once the orders service has followed every end event (it does so async)."""
        dbs = {name: self.layout.service_db(name) for name in SERVICES}
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while True:
            violations = audit_orders(dbs, self.expected)
            if not violations.get("order_status") or loop.time() > end:
                return violations, await broken_invariants(dbs)
            await asyncio.sleep(0.5)  # polling interval: the orders service follows events

    async def duplicate_replies(self, every: int = 7) -> None:
        """Re-produce every ``every``-th reply on the inbox: the engine must ignore them."""
        inbox = f"{self.layout.prefix}sagas.order_fulfilment.inbox"
        consumer = AIOKafkaConsumer(
            inbox,
            bootstrap_servers=self.layout.bootstrap_servers,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.layout.bootstrap_servers)
        await consumer.start()
        await producer.start()
        seen = 0
        try:
            async for record in consumer:
                if dict(record.headers).get("ce_type") == b"orders.OrderPlaced":
                    continue
                if dict(record.headers).get("dlq_reason"):
                    continue
                seen += 1
                if seen % every == 0:
                    await producer.send(
                        inbox, record.value, key=record.key, headers=list(record.headers)
                    )
                    self.duplicated += 1
        finally:
            await consumer.stop()
            await producer.stop()


@asynccontextmanager
async def order_system(
    bootstrap: str,
    workdir: Path,
    engines: int = 1,
    faults: dict[str, dict[str, str]] | None = None,
    delivery: str = "transactional",
) -> AsyncIterator[OrderRun]:
    """Services and ``engines`` engine processes (``SAGAS_DELIVERY=delivery``); everything
    stopped at the end."""
    layout = SystemLayout(
        bootstrap,
        workdir,
        prefix=f"r{uuid.uuid4().hex[:8]}.",
        component_env={"engine": {"SAGAS_DELIVERY": delivery}},
    )
    codec = examples.codec()
    with Supervisor(workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        for name in SERVICES:
            spec = system.service_spec(
                name, ORDERS.seeds[name], (faults or {}).get(name), web=name == "orders"
            )
            system.start(spec)
        for index in range(1, engines + 1):
            system.start(system.engine_spec(index, sagas=ENGINE_SAGAS))
        watcher = OutcomeWatcher(bootstrap, codec, layout.prefix)
        run = OrderRun(system, codec, watcher)
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(watcher.run())
            await system.wait_healthy("orders")
            try:
                yield run
            finally:
                watching.cancel()
        exits = supervisor.unexpected_exits()
        assert not exits, f"processes died on their own: {exits}"
        # Every process must stop on SIGTERM, within the grace, with status 0.
        supervisor.stop_all()
        unclean = supervisor.unclean_stops()
        assert not unclean, f"processes did not stop cleanly: {unclean}"
    codec.close()


def kill_points(seed: int, count: int, low: float = 0.05, high: float = 0.85) -> list[float]:
    """``count`` progress fractions at which to kill, drawn from ``seed`` (replayable)."""
    rng = random.Random(seed)
    return sorted(rng.uniform(low, high) for _ in range(count))
