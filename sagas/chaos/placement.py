"""Place orders and hires at a steady rate through the entry services' HTTP APIs.

Requests come from the shipped workloads (`services.workload`): every fourth is a hire,
the others are orders. A request is retried until its entry service accepts it (the
service may be killed, paused or cut off from Kafka meanwhile); a retry the service
refuses because it already stored that business key counts as placed, since the
first attempt went through.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from sagas.dev.system import LocalSystem
from sagas.errors import SagasError
from services.workload import Request, Workload

HIRE_EVERY = 4
"""One request in four is a hire (onboarding has six services to the orders' four)."""


class PlacementError(SagasError):
    """An entry service did not accept a request within the deadline."""


@dataclass
class Placer:
    """Places ``total`` requests at ``rate`` per second, mixing both workloads.

    Attributes:
        may_place: whether the request at this index may be placed now; the runner
            holds placement back while a fault is still being injected, so sagas are
            placed after each heal and recovery can be measured on them.
        turn: set by the runner when ``may_place`` may have changed.
    """

    system: LocalSystem
    orders: Workload
    hires: Workload
    total: int
    rate: float
    placed: dict[str, list[Request]]
    may_place: Callable[[int], bool]
    turn: asyncio.Event
    deadline_s: float = 300.0
    concurrency: int = 16
    attempts: int = 0

    def plan(self) -> list[tuple[Workload, Request]]:
        """The requests in placement order (deterministic)."""
        counters = {self.orders.saga: 0, self.hires.saga: 0}
        out: list[tuple[Workload, Request]] = []
        for k in range(self.total):
            workload = self.hires if k % HIRE_EVERY == HIRE_EVERY - 1 else self.orders
            out.append((workload, workload.request(counters[workload.saga])))
            counters[workload.saga] += 1
        return out

    async def run(self, on_placed: Callable[[], None] | None = None) -> None:
        """Place every request; raises `PlacementError` when one cannot be placed."""
        limit = asyncio.Semaphore(self.concurrency)
        began = time.monotonic()
        async with httpx.AsyncClient(timeout=30) as client, asyncio.TaskGroup() as tg:
            for k, (workload, request) in enumerate(self.plan()):
                if not self.may_place(k):
                    while not self.may_place(k):
                        self.turn.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self.turn.wait(), 1.0)
                    began = time.monotonic() - k / self.rate  # steady again from here
                delay = began + k / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)  # pacing: the steady placement rate
                await limit.acquire()
                tg.create_task(self._place(client, workload, request, limit, on_placed))

    async def _place(
        self,
        client: httpx.AsyncClient,
        workload: Workload,
        request: Request,
        limit: asyncio.Semaphore,
        on_placed: Callable[[], None] | None,
    ) -> None:
        try:
            await self._post(client, workload, request)
            self.placed.setdefault(workload.saga, []).append(request)
            if on_placed is not None:
                on_placed()
        finally:
            limit.release()

    async def _post(self, client: httpx.AsyncClient, workload: Workload, request: Request) -> None:
        end = time.monotonic() + self.deadline_s
        retried = False
        last = ""
        while time.monotonic() < end:
            self.attempts += 1
            try:
                url = f"{self.system.web_url(workload.entry)}{workload.route}"
                response = await client.post(url, json=request.body)
            except httpx.HTTPError as exc:
                last = repr(exc)
            else:
                if response.status_code == 201:
                    return
                if retried and "exists already" in response.text:
                    return  # an earlier attempt stored it; the service publishes it
                last = f"{response.status_code} {response.text[:200]}"
            retried = True
            await asyncio.sleep(0.5)  # retry interval while the entry service is down
        raise PlacementError(f"{workload.entry} did not accept {request.key}: {last}")
