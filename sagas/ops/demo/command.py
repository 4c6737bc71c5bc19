"""`sagas demo [--orders N] [--hires N] [--json] [--keep]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from sagas.dev.broker import DevKafka
from sagas.dev.cluster import dev_broker, external_bootstrap
from sagas.dev.system import SystemLayout
from sagas.ops.demo.run import DEFAULT_RATE, DemoPlan, run_demo
from sagas.ops.demo.summary import render
from sagas.ops.demo_env import (
    DEMO_ENV,
    demo_variables,
    paste_lines,
    remove_demo_env,
    write_demo_env,
)
from sagas.settings import DevKafkaSettings
from services.workload import workloads

WARMUP_S = 50.0
"""Seconds of warm-up load by default: on a fresh broker the order saga's p50 measured
342 to 673 ms with none, 158 ms after 25 s and 72 ms after 50 s (docs/benchmarks.md,
"`make demo` and a fresh broker")."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = sub.add_parser("demo", help="run the whole system end to end and summarise it")
    demo.add_argument("--orders", type=int, default=200, help="orders to place (default 200)")
    demo.add_argument("--hires", type=int, default=50, help="hires to onboard (default 50)")
    demo.add_argument("--engines", type=int, default=1, help="engine processes (default 1)")
    demo.add_argument(
        "--rate",
        type=float,
        default=DEFAULT_RATE,
        help=f"sagas placed per second, all together (default {DEFAULT_RATE:g}: a load this "
        "system sustains on 2 cores); 0: all at once",
    )
    demo.add_argument("--json", action="store_true", help="print only the summary, as JSON")
    demo.add_argument(
        "--keep", action="store_true", help="keep everything and the dashboard running until Ctrl-C"
    )
    demo.add_argument(
        "--port", type=int, default=8080, help="dashboard port with --keep (default 8080)"
    )
    demo.add_argument("--timeout", type=float, default=600, help="seconds to wait for sagas to end")
    demo.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of the same load, on topics of its own and not counted, before the "
        f"measured run (default {WARMUP_S:g} when the demo starts its own broker, else 0): "
        "a fresh broker answers several times slower in its first minute",
    )
    demo.set_defaults(handler=main)


def _plan(args: argparse.Namespace) -> DemoPlan:
    available = workloads()
    wanted = {"order_fulfilment": args.orders, "onboarding": args.hires}
    counts = {name: n for name, n in wanted.items() if n > 0 and name in available}
    for name, n in wanted.items():
        if n < 0:
            raise SystemExit(
                f"error: --{'orders' if name == 'order_fulfilment' else 'hires'} must be >= 0"
            )
    if args.rate < 0:
        raise SystemExit("error: --rate must be >= 0 (0: all at once)")
    if args.warmup is not None and args.warmup < 0:
        raise SystemExit("error: --warmup must be >= 0 (0: none)")
    port = args.port if args.keep else None
    return DemoPlan(
        counts,
        available,
        args.engines,
        args.timeout,
        dashboard_port=port,
        rate=args.rate or None,
    )


def warmup_plan(plan: DemoPlan, seconds: float) -> DemoPlan | None:
    """The same workloads at the same rate for about ``seconds``, to run first on topics
    of their own: a fresh broker compiles its hot paths (transactions, markers) in its
    first minute of load and answers several times slower meanwhile (docs/benchmarks.md,
    "A broker gets faster over its first minutes"), which is not what a system in service
    sees. None: no warm-up (none asked, or a burst, which has no rate to keep)."""
    if seconds <= 0 or plan.rate is None:
        return None
    total = sum(plan.counts.values())
    if not total:
        return None
    wanted = plan.rate * seconds
    counts = {name: max(1, round(wanted * n / total)) for name, n in plan.counts.items()}
    return replace(plan, counts=counts, dashboard_port=None, placed={})


def warmup_line(warm: DemoPlan) -> str:
    placed = sum(warm.counts.values())
    seconds = placed / warm.rate if warm.rate else 0.0
    return (
        f"warming the broker up first: {placed} sagas at the same rate over about "
        f"{seconds:.0f} s, on topics of their own, not counted; --warmup 0 skips it"
    )


def pace_line(plan: DemoPlan) -> str:
    """What the demo says about the pace it places its sagas at."""
    names = {"order_fulfilment": "orders", "onboarding": "hires"}
    what = " and ".join(f"{n} {names.get(k, k)}" for k, n in plan.counts.items())
    if plan.rate is None:
        return f"placing {what} all at once (--rate 0): cycle times include the queue"
    shares = ", ".join(f"{plan.rate_of(k) or 0:.1f} {names.get(k, k)}/s" for k in plan.counts)
    seconds = sum(plan.counts.values()) / plan.rate
    return (
        f"placing {what} at a steady {plan.rate:g} sagas/s ({shares}) over about "
        f"{seconds:.0f} s; --rate changes it"
    )


def healthy(summary: dict[str, Any]) -> bool:
    """Whether the demo succeeds (exit status 0): every saga ended as planned, every
    invariant holds, and every process stopped cleanly on SIGTERM."""
    all_ended = all(
        s["not_ended"] == 0 and s["unexpected_outcomes"] == 0 for s in summary["sagas"].values()
    )
    stopped_cleanly = not summary.get("stops", {}).get("unclean")
    return all_ended and all(summary["invariants"].values()) and stopped_cleanly


def json_doc(summary: dict[str, Any]) -> str:
    """The summary as ``--json`` prints it (violations only when there are some)."""
    return json.dumps({k: v for k, v in summary.items() if k != "violations" or v}, indent=2)


def cli_lines(variables: dict[str, str]) -> list[str]:
    """What to tell the user so that the CLI in another terminal sees the demo."""
    return [
        "To use sagas list / show / web / dlq on this demo from another terminal, paste:",
        *(f"  {line}" for line in paste_lines(variables)),
        f"(or run them from this folder: they read {DEMO_ENV} while the demo runs)",
    ]


def summary_printer(
    as_json: bool, console: Console, lines: list[str], stdout: TextIO | None = None
) -> Callable[[dict[str, Any]], None]:
    """What ``--keep`` does with the summary as soon as it exists: the JSON to stdout
    (flushed at once: the demo goes on running) or the tables; then ``lines`` again."""

    def show(summary: dict[str, Any]) -> None:
        if as_json:
            out = sys.stdout if stdout is None else stdout
            print(json_doc(summary), file=out, flush=True)
        else:
            render(summary, console)
        for line in lines:
            console.print(line, markup=False, highlight=False)

    return show


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=args.json)
    if not console.is_terminal:
        console = Console(stderr=args.json, width=120)  # logs and CI: room for the tables
    plan = _plan(args)
    bootstrap = external_bootstrap()
    broker: DevKafka | None = None
    if bootstrap is None:
        settings = DevKafkaSettings()
        broker = dev_broker(settings)
        with console.status("starting the dev Kafka broker..."):
            if not broker.start(timeout=settings.start_timeout, quiet=True):
                broker = None  # it was already running: not ours to stop
        bootstrap = dev_broker(settings).bootstrap_servers
    warmup_s = args.warmup if args.warmup is not None else (WARMUP_S if broker else 0.0)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir = Path(os.environ.get("SAGAS_DEMO_DIR", ".sagas/demo")) / stamp
    layout = SystemLayout(bootstrap, workdir.resolve(), prefix=f"demo{uuid.uuid4().hex[:6]}.")
    if not args.json:
        console.print(
            f"Kafka at {bootstrap}; topics prefixed {layout.prefix!r}; logs in {workdir / 'logs'}"
        )
    lines: list[str] = []
    if args.keep:
        # The CLI's own read model, next to the dashboard's (two followers, two files).
        variables = demo_variables(bootstrap, layout.prefix, layout.workdir / "ops-cli.sqlite3")
        write_demo_env(variables, os.getpid())
        lines = cli_lines(variables)
        for line in lines:
            console.print(line, markup=False, highlight=False)
    try:
        warm = warmup_plan(plan, warmup_s)
        if warm is not None:
            if not args.json:
                console.print(warmup_line(warm), markup=False, highlight=False)
            warm_layout = SystemLayout(
                bootstrap, (workdir / "warmup").resolve(), prefix=f"warm{uuid.uuid4().hex[:6]}."
            )
            asyncio.run(_run(warm, warm_layout, Console(quiet=True), args, None))
        if not args.json:
            console.print(pace_line(plan), markup=False, highlight=False)
        show = summary_printer(args.json, console, lines)
        summary = asyncio.run(_run(plan, layout, console, args, show))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print(f"interrupted: every process was stopped; logs in {workdir / 'logs'}")
        return 130
    finally:
        if args.keep:
            remove_demo_env(os.getpid())
        if broker is not None:
            broker.stop()
    if args.json:
        print(json_doc(summary))
    else:
        render(summary, console)
        console.print(f"logs: {summary['logs']}")
    return 0 if healthy(summary) else 1


async def _run(
    plan: DemoPlan,
    layout: SystemLayout,
    console: Console,
    args: argparse.Namespace,
    show: Callable[[dict[str, Any]], None] | None,
) -> dict[str, Any]:
    # SIGTERM stops the demo like Ctrl-C does: every process it started is stopped.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)

    quiet = args.json or show is None
    return await run_demo(plan, layout, console, quiet=quiet, on_summary=show)
