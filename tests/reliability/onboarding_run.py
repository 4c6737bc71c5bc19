"""A run of the onboarding saga with real processes: an engine and the six services.

Hires go in through the hr service's HTTP API; everything the checks look at comes
from the services' own SQLite files and from the outcome events on `sagas.events`,
never from the engine's local state.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sagas.dev.outcomes import OutcomeWatcher
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from services.app import app as examples
from services.audit import Violations, audit_onboarding
from services.workload import HIRES

SERVICES = ("hr", "directory", "assets", "mail", "licensing", "access")
PARTITIONS = 6
SEEDS = HIRES.seeds


def hire_request(i: int) -> tuple[dict[str, Any], str]:
    """Hire ``i`` (see `services.workload.hire_request`) and how its onboarding must end."""
    request = HIRES.request(i)
    return request.body, request.expected


@dataclass
class OnboardingRun:
    system: LocalSystem
    watcher: OutcomeWatcher
    expected: dict[str, str] = field(default_factory=dict)

    def saga_ids(self) -> set[str]:
        return {f"employee:{e}" for e in self.expected}

    def outcomes(self) -> dict[str, str]:
        return {e: self.watcher.sagas[f"employee:{e}"].state for e in self.expected}

    async def hire(self, count: int, concurrency: int = 8) -> None:
        """Hire ``count`` employees through the hr service's HTTP API."""
        queue = list(range(count))

        async def worker(client: httpx.AsyncClient) -> None:
            while queue:
                request, outcome = hire_request(queue.pop(0))
                response = await client.post(f"{self.system.web_url('hr')}/hires", json=request)
                assert response.status_code == 201, response.text
                self.expected[str(request["employee_id"])] = outcome

        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(worker(client) for _ in range(concurrency)))

    async def wait_until_ended(self, deadline_s: float) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while not self.watcher.ended(self.saga_ids()):
            if loop.time() > end:
                stuck = sorted(
                    i
                    for i in self.saga_ids()
                    if (o := self.watcher.sagas.get(i)) is None or o.state == "RUNNING"
                )
                raise AssertionError(f"{len(stuck)} sagas did not end, e.g. {stuck[:5]}")
            await self.watcher.changed(wait_s=1.0)

    async def audit(self, deadline_s: float = 60) -> Violations:
        """Audit once hr has followed every end event (it does so asynchronously)."""
        dbs = {name: self.system.layout.service_db(name) for name in SERVICES}
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        while True:
            violations = await audit_onboarding(dbs, self.expected)
            if not violations.get("hire_status") or loop.time() > end:
                return violations
            await asyncio.sleep(0.5)  # polling interval: hr follows the end events


@asynccontextmanager
async def onboarding_system(bootstrap: str, workdir: Path) -> AsyncIterator[OnboardingRun]:
    """The six services and one engine running onboarding; everything stopped at the end.

    The services create the event topics they follow or publish to with the engine's
    partition count, so the layout is the same whichever process creates one first.
    """
    layout = SystemLayout(
        bootstrap,
        workdir,
        prefix=f"r{uuid.uuid4().hex[:8]}.",
        partitions=PARTITIONS,
    )
    with examples.codec() as codec, Supervisor(workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        for name in SERVICES:
            system.start(system.service_spec(name, SEEDS[name], web=name == "hr"))
        system.start(system.engine_spec(1, sagas=("onboarding",)))
        watcher = OutcomeWatcher(bootstrap, codec, layout.prefix)
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(watcher.run())
            await system.wait_healthy("hr")
            try:
                yield OnboardingRun(system, watcher)
            finally:
                watching.cancel()
        exits = supervisor.unexpected_exits()
        assert not exits, f"processes died on their own: {exits}"
        # Every process must stop on SIGTERM, within the grace, with status 0.
        supervisor.stop_all()
        unclean = supervisor.unclean_stops()
        assert not unclean, f"processes did not stop cleanly: {unclean}"
