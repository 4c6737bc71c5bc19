"""Run one chaos scenario: start everything, place work, inject faults, quiesce, check.

The run owns every process it signals: its own broker (on free ports, data under the
work folder), the engines (``engine-1``..) and the services of both workloads. Faults
come one at a time from the schedule drawn from the seed; after each the runner
measures how long the system took to make progress again (a placed saga ending).
Then it waits until every placed saga ended (or the deadline passes), reads the final
state of every saga from the changelogs and runs every registered check.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from sagas.chaos.checks.registry import CHECKS
from sagas.chaos.context import RunContext
from sagas.chaos.engine import CONTROL_VARIABLE
from sagas.chaos.faults.registry import FAULTS
from sagas.chaos.final import final_instances, read_changelogs
from sagas.chaos.placement import PlacementError, Placer
from sagas.chaos.schedule import PlannedFault, draw
from sagas.dev.broker import DevKafka, free_port
from sagas.dev.outcomes import OutcomeWatcher
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.runtime import topics
from sagas.settings import DevKafkaSettings
from services.app import app as examples
from services.definitions import all_definitions
from services.workload import HIRES, ORDERS, Workload

FAULT_DEADLINE_S = 300.0
"""No single fault (inject and heal) may take longer."""
START_DEADLINE_S = 600.0
"""How long the engines get to create their topics (a loaded machine is slow)."""
MAX_RESTARTS = 5
"""A process that keeps dying on its own is restarted this many times, then left down."""
LEAD = 0.05
"""Placement runs at most this fraction of the sagas ahead of a fault not yet healed."""
RECOVERY_DEADLINE_S = 240.0
"""After a heal, a saga must end within this long, or the run records ``no_recovery``."""


@dataclass
class ChaosPlan:
    """What to run.

    Attributes:
        sagas: business processes to place (orders and hires, three to one).
        seed: draws the schedule and every random choice of the faults.
        counts: fault kind -> how many to inject.
        engines: engine processes (at least 2, so partitions can move).
        rate: sagas placed per second.
        quiesce_s: after placement and faults, how long every saga gets to end.
        workdir: the run's folder (broker data, stores, logs).
    """

    sagas: int
    seed: int
    counts: dict[str, int]
    workdir: Path
    engines: int = 2
    rate: float = 4.0
    quiesce_s: float = 600.0
    partitions: int = 6
    session_timeout_s: float = 20.0
    """Of the engines' group. Longer than the dev default (6 s): on a loaded machine a
    busy engine misses heartbeats for seconds, and each miss moves every partition."""
    proxy: bool | None = None
    """Clients through the fault proxy; None: when a network fault is scheduled."""
    schedule: list[PlannedFault] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.schedule = draw(self.seed, self.counts)


@dataclass
class Outcome:
    """What `run_chaos` returns: the context (everything observed) and the violations."""

    ctx: RunContext
    violations: dict[str, list[str]]
    duration_s: float
    final_states: dict[str, int]


Show = Callable[[RunContext, str], None]
"""Called about twice a second with the context and what is happening now."""


async def _start_broker(plan: ChaosPlan, stack: contextlib.AsyncExitStack) -> tuple[DevKafka, Any]:
    settings = DevKafkaSettings()
    port = free_port()
    use_proxy = plan.proxy
    if use_proxy is None:
        use_proxy = any(kind.startswith("net_") for kind in plan.counts)
    proxy: Any = None
    proxy_port = 0
    if use_proxy:
        from sagas.chaos.proxy import FaultProxy

        proxy_port = free_port()
        proxy = FaultProxy("127.0.0.1", port, listen_port=proxy_port)
        await proxy.start()
        stack.push_async_callback(proxy.stop)
    broker = DevKafka(
        settings.home,
        settings.version,
        port=port,
        controller_port=free_port(),
        instance_dir=plan.workdir / "kafka",
        heap=settings.heap,
        proxy_port=proxy_port,
        direct_port=free_port() if proxy_port else 0,
    )
    timeout = max(settings.start_timeout, timedelta(seconds=START_DEADLINE_S))
    await asyncio.to_thread(broker.start, timeout=timeout, quiet=True)
    stack.callback(broker.stop)
    return broker, proxy


def _seed(workload: Workload, service: str, sagas: int) -> Mapping[str, Any] | None:
    """The workload's seed, the laptop pool cut to what ``sagas`` hires can take.

    The shipped seed holds a million laptops per model, one row each: seeding them
    takes minutes on a loaded machine, and a run never needs more than one per saga.
    """
    seed = workload.seeds.get(service)
    if service == "assets" and seed is not None:
        pool = {model: min(int(n), sagas + 10) for model, n in seed["pool"].items()}
        return {**seed, "pool": pool}
    return seed


def _start_processes(ctx: RunContext, plan: ChaosPlan) -> None:
    system = ctx.system
    for workload in (ORDERS, HIRES):
        for service in workload.services:
            spec = system.service_spec(
                service, _seed(workload, service, plan.sagas), web=service == workload.entry
            )
            system.start(spec)
            ctx.services.append(service)
    assert ctx.control_dir is not None
    ctx.control_dir.mkdir(parents=True, exist_ok=True)
    for index in range(1, plan.engines + 1):
        spec = system.engine_spec(index)
        control = ctx.control_dir / f"{spec.name}.json"
        control.write_text(json.dumps({"clock_offset_s": 0.0, "store": "ok"}))
        # The chaos entry point: `sagas run` plus the hold of the control file.
        argv = ("python", "-m", "sagas.chaos.engine", *spec.argv[4:])
        env = {**spec.env, CONTROL_VARIABLE: str(control)}
        system.start(replace(spec, argv=argv, env=env))
        ctx.engines.append(spec.name)


PAYLOAD_LIMIT = 256 * 1024
"""The consumers' payload limit in chaos runs (SAGAS_MAX_PAYLOAD_BYTES)."""


@contextlib.asynccontextmanager
async def _system(plan: ChaosPlan, log: Callable[[str], None]) -> AsyncIterator[RunContext]:
    async with contextlib.AsyncExitStack() as stack:
        broker, proxy = await _start_broker(plan, stack)
        codec = examples.codec()
        stack.callback(codec.close)
        prefix = f"chaos{uuid.uuid4().hex[:6]}."
        layout = SystemLayout(
            broker.bootstrap_servers,
            plan.workdir,
            prefix=prefix,
            partitions=plan.partitions,
            session_timeout_s=plan.session_timeout_s,
            # Below Kafka's own limit, so the `oversized` poison kind has room: a record
            # Kafka accepts but every consumer must refuse and dead-letter.
            extra_env={"SAGAS_MAX_PAYLOAD_BYTES": str(PAYLOAD_LIMIT)},
        )
        supervisor = stack.enter_context(Supervisor(plan.workdir / "logs"))
        ctx = RunContext(
            system=LocalSystem(layout, supervisor),
            broker=broker,
            bootstrap_servers=broker.bootstrap_servers,
            direct_servers=broker.direct_servers,
            codec=codec,
            prefix=prefix,
            workdir=plan.workdir,
            rng=random.Random(plan.seed),
            proxy=proxy,
            control_dir=plan.workdir / "control",
            workloads={ORDERS.saga: ORDERS, HIRES.saga: HIRES},
            log=log,
        )
        stack.callback(_resume_all, supervisor)  # nothing stays SIGSTOPped
        _start_processes(ctx, plan)
        yield ctx


def _resume_all(supervisor: Supervisor) -> None:
    for proc in supervisor:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                proc.popen.send_signal(signal.SIGCONT)


async def _inject(
    ctx: RunContext,
    plan: ChaosPlan,
    placed_enough: Callable[[float], bool],
    healed: list[int],
    turn: asyncio.Event,
    status: list[str],
) -> None:
    """Inject the schedule's faults one at a time; measure recovery after each."""
    try:
        status[0] = "warming up: waiting for the first saga to end"
        warm_until = time.monotonic() + RECOVERY_DEADLINE_S
        while ctx.ended() == 0 and time.monotonic() < warm_until:
            assert ctx.watcher is not None
            await ctx.watcher.changed(wait_s=1.0)
        for planned in plan.schedule:
            while not placed_enough(planned.at):
                ctx.progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(ctx.progress.wait(), 1.0)
            status[0] = f"fault {planned.index + 1}/{len(plan.schedule)}: {planned.kind}"
            ctx.log(f"injecting {planned.kind} at {ctx.placed_count()} placed")
            ctx.in_fault = True
            try:
                async with asyncio.timeout(FAULT_DEADLINE_S):
                    await FAULTS[planned.kind](ctx)
            except Exception as exc:  # a fault that breaks is a finding, not a crash
                ctx.problem("fault_error", f"{planned.kind}: {exc!r}")
            finally:
                ctx.in_fault = False
                healed[0] += 1
                turn.set()
            status[0] = f"recovering from {planned.kind}"
            await _measure_recovery(ctx, planned.kind)
    finally:
        healed[0] = len(plan.schedule)
        turn.set()
        status[0] = "placing the last sagas"


async def _measure_recovery(ctx: RunContext, kind: str) -> None:
    healed = time.monotonic()
    before = ctx.ended()
    while time.monotonic() - healed < RECOVERY_DEADLINE_S:
        if ctx.ended() > before:
            ctx.recovery.setdefault(kind, []).append(round(time.monotonic() - healed, 2))
            return
        assert ctx.watcher is not None
        await ctx.watcher.changed(wait_s=0.2)
    ctx.problem("no_recovery", f"{kind}: no saga ended within {RECOVERY_DEADLINE_S:.0f}s")


async def _watch_processes(ctx: RunContext) -> None:
    """Record and restart what died on its own (faults restart what they kill)."""
    if ctx.in_fault:
        return
    supervisor = ctx.system.supervisor
    for proc in supervisor:
        name = proc.spec.name
        if not proc.alive() and len(ctx.exits.get(name, [])) < MAX_RESTARTS:
            tail = supervisor.log_tail(name, lines=3).replace("\n", " | ")
            ctx.exits.setdefault(name, []).append(f"exit {proc.exit_code()}: {tail}")
            ctx.log(f"{name} exited on its own ({proc.exit_code()}); restarting it")
            supervisor.restart(name)
    if ctx.broker.recorded_pid() is None:
        ctx.exits.setdefault("broker", []).append("the broker died on its own")
        ctx.log("the broker died on its own; restarting it")
        await asyncio.to_thread(ctx.broker.start, quiet=True)


async def _follow_outcomes(watcher: OutcomeWatcher) -> None:
    """Follow ``sagas.events``; until the engines created it, and across broker
    restarts that break the consumer, start again (reading from the start is
    idempotent: the watcher keeps the last state of each saga).

    Raises:
        TopicSetupError: the engines did not create the topic in time.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=watcher.bootstrap_servers)
    await admin.start()
    try:
        await topics.wait_until_ready(admin, [watcher.topic], deadline_s=START_DEADLINE_S)
    finally:
        await admin.close()
    while True:
        try:
            await watcher.run()
        except KafkaError:
            await asyncio.sleep(1.0)  # retry interval: the topic or broker is not there yet


async def _place_all(ctx: RunContext, placer: Placer) -> None:
    try:
        await placer.run(on_placed=ctx.progress.set)
    except* PlacementError as group:  # recorded; the run goes on to check what was placed
        for exc in group.exceptions:
            ctx.problem("placement", str(exc))


async def run_chaos(plan: ChaosPlan, show: Show, log: Callable[[str], None]) -> Outcome:
    """Run ``plan`` and check the system; the report is built from the result."""
    began = time.monotonic()
    async with _system(plan, log) as ctx:
        ctx.watcher = OutcomeWatcher(ctx.direct_servers, ctx.codec, ctx.prefix)
        status = ["starting"]
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(_follow_outcomes(ctx.watcher))
            for workload in ctx.workloads.values():
                await ctx.system.wait_healthy(workload.entry, deadline_s=START_DEADLINE_S)
            turn = asyncio.Event()
            healed = [0]  # how many faults of the schedule have healed

            def may_place(k: int) -> bool:
                if healed[0] >= len(plan.schedule):
                    return True
                return k < (plan.schedule[healed[0]].at + LEAD) * plan.sagas

            placer = Placer(
                ctx.system, ORDERS, HIRES, plan.sagas, plan.rate, ctx.placed, may_place, turn
            )
            status[0] = "placing"
            placing = tg.create_task(_place_all(ctx, placer))

            def placed_enough(at: float) -> bool:
                return placing.done() or ctx.placed_count() >= at * plan.sagas

            injecting = tg.create_task(_inject(ctx, plan, placed_enough, healed, turn, status))
            while not (placing.done() and injecting.done()):
                await _watch_processes(ctx)
                show(ctx, status[0])
                await ctx.watcher.changed(wait_s=0.5)
            status[0] = "waiting for every saga to end"
            end = time.monotonic() + plan.quiesce_s
            while ctx.ended() < ctx.placed_count() and time.monotonic() < end:
                await _watch_processes(ctx)
                show(ctx, status[0])
                await ctx.watcher.changed(wait_s=0.5)
            status[0] = "checking"
            show(ctx, status[0])
            violations = await _check(ctx)
            watching.cancel()
        final_states: dict[str, int] = {}
        for entry in ctx.records.values():
            if entry.body is not None:
                state = str(entry.body["state"])
                final_states[state] = final_states.get(state, 0) + 1
    return Outcome(ctx, violations, round(time.monotonic() - began, 1), final_states)


async def _check(ctx: RunContext) -> dict[str, list[str]]:
    names = [d.name for d in all_definitions()]
    partitions = ctx.system.layout.partitions
    ctx.records = await read_changelogs(ctx.direct_servers, ctx.prefix, names, partitions)
    final = final_instances(ctx.records, all_definitions())
    found: dict[str, list[str]] = {k: list(v) for k, v in ctx.problems.items()}
    for check in CHECKS:
        try:
            result = await check(ctx, final)
        except Exception as exc:  # a check that breaks is reported, the others still run
            result = {"check_error": [f"{getattr(check, '__name__', check)}: {exc!r}"]}
        for kind, problems in result.items():
            if problems:
                found.setdefault(kind, []).extend(problems)
    return found
