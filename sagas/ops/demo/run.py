"""Drive the demo: start processes, place work, show progress, audit, summarise."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from sagas.contracts.codec import Codec
from sagas.dev.outcomes import OutcomeWatcher
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.kafka_security import client_options
from sagas.ops.demo.load import place
from sagas.ops.demo.summary import saga_summary
from sagas.ops.web.server import Dashboard
from sagas.ops.web.state import WebConfig
from sagas.settings import KafkaSettings, OpsSettings
from services.app import app as examples
from services.workload import Request, Workload

DEFAULT_RATE = 10.0
"""Sagas per second the demo places by default: a load the whole system (broker, engine,
ten services, the demo itself) sustains on two cores, so the cycle times it prints are
those of a system in service, not of a queue (docs/benchmarks.md)."""


@dataclass
class DemoPlan:
    """What to run: per workload, how many business processes.

    Attributes:
        dashboard_port: serve the dashboard during the run and keep everything running
            after the summary until Ctrl-C (``--keep``); None: stop at the end.
    """

    counts: dict[str, int]
    workloads: dict[str, Workload]
    engines: int = 1
    deadline_s: float = 600
    dashboard_port: int | None = None
    rate: float | None = DEFAULT_RATE
    """Sagas placed per second, all workloads together, each workload's share in
    proportion to its count; None: all at once (a burst)."""
    placed: dict[str, list[Request]] = field(default_factory=dict)

    def rate_of(self, name: str) -> float | None:
        """Sagas of workload ``name`` placed per second (None: a burst)."""
        total = sum(self.counts.values())
        if self.rate is None or not total:
            return None
        return self.rate * self.counts.get(name, 0) / total


async def _place(
    system: LocalSystem, workload: Workload, count: int, out: list[Request], rate: float | None
) -> None:
    url = f"{system.web_url(workload.entry)}{workload.route}"
    await place(url, [workload.request(i) for i in range(count)], out, rate=rate)


def _progress(plan: DemoPlan, watcher: OutcomeWatcher, began: float) -> Table:
    table = Table(title=f"Sagas by state ({time.monotonic() - began:.0f}s)")
    for col in ("saga", "placed", "running", "completed", "compensated", "failed"):
        table.add_column(col, justify="left" if col == "saga" else "right")
    for name in plan.counts:
        ids = {r.saga_id for r in plan.placed.get(name, [])}
        states = [watcher.sagas[i].state for i in ids if i in watcher.sagas]
        ended = {s: states.count(s) for s in ("COMPLETED", "COMPENSATED", "FAILED")}
        running = len(ids) - sum(ended.values())
        table.add_row(
            name,
            f"{len(ids)}/{plan.counts[name]}",
            str(running),
            str(ended["COMPLETED"]),
            str(ended["COMPENSATED"]),
            str(ended["FAILED"]),
        )
    return table


@contextlib.contextmanager
def live_table(table: Table, console: Console, quiet: bool) -> Iterator[Live]:
    """The progress table, redrawn in place, left on screen when done, and ended by a
    line break: rich adds one only on a terminal, so in a log or under ``make`` the
    next output (the summary's title) would go on the table's last line."""
    shown = Console(quiet=True) if quiet else console
    with Live(table, console=shown, transient=False, refresh_per_second=4) as live:
        yield live
    if not shown.is_terminal and not quiet:
        shown.line()


def _all_ended(plan: DemoPlan, watcher: OutcomeWatcher) -> bool:
    placed = [r for reqs in plan.placed.values() for r in reqs]
    if len(placed) < sum(plan.counts.values()):
        return False
    return watcher.ended({r.saga_id for r in placed})


def _security() -> tuple[KafkaSettings | None, dict[str, Any]]:
    """The security settings and options of a configured cluster (none: the dev broker).

    The processes the demo starts inherit the same ``KAFKA_*`` environment.
    """
    kafka = KafkaSettings()
    if not kafka.bootstrap_servers:
        return None, {}
    return kafka, client_options(kafka)


def _dashboard(plan: DemoPlan, layout: SystemLayout) -> Dashboard:
    token = OpsSettings().admin_token
    config = WebConfig(
        ops_db=layout.workdir / "ops.sqlite3",
        bootstrap_servers=layout.bootstrap_servers,
        topic_prefix=layout.prefix,
        app=examples,
        admin_token=token.get_secret_value() if token else None,
        kafka=_security()[0],
        client_options=_security()[1],
    )
    return Dashboard(config, port=plan.dashboard_port or 0)


async def run_demo(
    plan: DemoPlan,
    layout: SystemLayout,
    console: Console,
    quiet: bool,
    on_summary: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run the plan on ``layout`` and return the summary (also when sagas did not end).

    With a dashboard port, ``on_summary`` is called with the summary and everything
    keeps running until the task is cancelled (Ctrl-C).
    """
    codec = examples.codec()
    async with contextlib.AsyncExitStack() as stack:
        if plan.dashboard_port is not None:
            dash = await stack.enter_async_context(_dashboard(plan, layout))
            mode = "with actions" if OpsSettings().admin_token else "read-only"
            console.print(f"dashboard ({mode}): {dash.url}")
        summary = await _run(plan, layout, console, quiet, codec, on_summary)
    codec.close()
    return summary


async def _run(
    plan: DemoPlan,
    layout: SystemLayout,
    console: Console,
    quiet: bool,
    codec: Codec,
    on_summary: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    with Supervisor(layout.workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        for name, workload in plan.workloads.items():
            if plan.counts.get(name):
                for service in workload.services:
                    spec = system.service_spec(
                        service, workload.seeds.get(service), web=service == workload.entry
                    )
                    system.start(spec)
        for index in range(1, plan.engines + 1):
            system.start(system.engine_spec(index))
        watcher = OutcomeWatcher(
            layout.bootstrap_servers, codec, layout.prefix, client_options=_security()[1]
        )
        began = time.monotonic()
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(watcher.run())
            for name, count in plan.counts.items():
                if count:
                    await system.wait_healthy(plan.workloads[name].entry)
            placing = [
                tg.create_task(
                    _place(
                        system,
                        plan.workloads[n],
                        c,
                        plan.placed.setdefault(n, []),
                        plan.rate_of(n),
                    )
                )
                for n, c in plan.counts.items()
                if c
            ]
            with live_table(_progress(plan, watcher, began), console, quiet) as live:
                while not _all_ended(plan, watcher) and time.monotonic() - began < plan.deadline_s:
                    if exits := supervisor.unexpected_exits():
                        raise RuntimeError(
                            f"processes died: {exits}; logs in {layout.workdir / 'logs'}"
                        )
                    await watcher.changed(wait_s=0.5)
                    live.update(_progress(plan, watcher, began))
            for task in placing:
                await task
            summary = await _summarise(plan, watcher, layout)
            if plan.dashboard_port is not None:
                if on_summary is not None:
                    on_summary(summary)
                console.print("everything keeps running: press Ctrl-C to stop")
                await asyncio.Event().wait()  # until cancelled by Ctrl-C
            watching.cancel()
        summary["stops"] = await _stop(supervisor)
    return summary


async def _stop(supervisor: Supervisor) -> dict[str, Any]:
    """Stop every process (SIGTERM); those that needed SIGKILL or answered with a
    non-zero status did not stop cleanly."""
    await asyncio.to_thread(supervisor.stop_all)
    return {"processes": len(list(supervisor)), "unclean": supervisor.unclean_stops()}


async def _summarise(
    plan: DemoPlan, watcher: OutcomeWatcher, layout: SystemLayout
) -> dict[str, Any]:
    sagas: dict[str, Any] = {}
    invariants: dict[str, bool] = {}
    violations: dict[str, list[str]] = {}
    for name, requests in plan.placed.items():
        workload = plan.workloads[name]
        outcomes = [watcher.sagas[r.saga_id] for r in requests if r.saga_id in watcher.sagas]
        summary = saga_summary(outcomes, len(requests))
        summary["placed_per_s"] = plan.rate_of(name)
        expected = {r.key: r.expected for r in requests}
        summary["unexpected_outcomes"] = sum(
            1
            for r in requests
            if (o := watcher.sagas.get(r.saga_id)) is not None and o.state != r.expected
        )
        sagas[name] = summary
        dbs = {s: layout.service_db(s) for s in workload.services}
        found = await _audit_when_settled(workload, dbs, expected)
        for kind, invariant in workload.checks.items():
            invariants[f"{name}.{invariant}"] = kind not in found
        broken = await workload.invariants(dbs)
        for service in workload.services:
            invariants[f"{service}.books_balance"] = service not in broken
        violations.update({f"{name}.{k}": v for k, v in found.items()})
        violations.update({f"{s}.books": v for s, v in broken.items()})
    return {
        "sagas": sagas,
        "invariants": invariants,
        "violations": violations,
        "logs": str(layout.workdir / "logs"),
    }


async def _audit_when_settled(
    workload: Workload, dbs: dict[str, Path], expected: dict[str, str], deadline_s: float = 30
) -> dict[str, list[str]]:
    """The entry service follows end events asynchronously: give it time to catch up."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        found = await workload.audit(dbs, expected)
        if not found or loop.time() > end:
            return found
        await asyncio.sleep(0.5)  # polling interval: services follow events on their own
