"""`sagas chaos`: both sagas under load while faults drawn from a seed are injected.

Exit status: 0 when every check passed, 1 on any violation, 2 on a usage or set-up
error (an unknown fault kind, a broker that does not start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from sagas.chaos import report
from sagas.chaos.context import RunContext
from sagas.chaos.faults.registry import FAULTS
from sagas.chaos.runner import ChaosPlan, run_chaos
from sagas.chaos.schedule import ScheduleError, fault_counts
from sagas.errors import SagasError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    chaos = sub.add_parser(
        "chaos", help="run both sagas under load while injecting faults, then check everything"
    )
    chaos.add_argument("--sagas", type=int, default=300, help="sagas to place (default 300)")
    chaos.add_argument("--seed", type=int, default=None, help="replay a run (default: random)")
    chaos.add_argument("--json", action="store_true", help="print only the report, as JSON")
    chaos.add_argument(
        "--faults",
        default="all",
        help="fault kinds, comma-separated, each optionally kind=N; 'all' (default): every "
        f"kind ({', '.join(sorted(FAULTS))})",
    )
    chaos.add_argument(
        "--per-kind", type=int, default=1, help="faults of each kind without =N (default 1)"
    )
    chaos.add_argument("--engine-kills", type=int, default=None, help="engine_kill faults")
    chaos.add_argument("--broker-restarts", type=int, default=None, help="broker_restart faults")
    chaos.add_argument("--engines", type=int, default=2, help="engine processes (default 2)")
    chaos.add_argument("--rate", type=float, default=4.0, help="sagas placed per second")
    chaos.add_argument(
        "--timeout", type=float, default=600, help="seconds for every saga to end after placing"
    )
    chaos.add_argument("--workdir", type=Path, default=None, help="the run's folder")
    chaos.add_argument(
        "--keep", action="store_true", help="keep the work folder of a run without violations"
    )
    chaos.set_defaults(handler=main)


def counts_from(args: argparse.Namespace) -> dict[str, int]:
    """Fault kind -> count, from ``--faults``, ``--per-kind`` and the two count options."""
    kinds: list[str] = []
    given: dict[str, int] = {}
    for item in (part.strip() for part in args.faults.split(",")):
        if not item:
            continue
        if item == "all":
            kinds.extend(sorted(FAULTS))
            continue
        kind, _, n = item.partition("=")
        kinds.append(kind)
        if n:
            try:
                given[kind] = int(n)
            except ValueError as exc:
                raise ScheduleError(f"--faults: {item!r} is not kind=N") from exc
    if args.engine_kills is not None:
        given["engine_kill"] = args.engine_kills
        kinds.append("engine_kill")
    if args.broker_restarts is not None:
        given["broker_restart"] = args.broker_restarts
        kinds.append("broker_restart")
    return fault_counts(kinds, FAULTS, args.per_kind, **given)


def plan_from(args: argparse.Namespace) -> ChaosPlan:
    """The run described by the command line (raises `ScheduleError` on bad input)."""
    if args.sagas < 1 or args.engines < 2 or args.rate <= 0:
        raise ScheduleError("--sagas must be >= 1, --engines >= 2, --rate > 0")
    seed = args.seed if args.seed is not None else secrets.randbelow(2**31)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    workdir = args.workdir or Path(".sagas/chaos") / f"{stamp}-seed{seed}"
    return ChaosPlan(
        sagas=args.sagas,
        seed=seed,
        counts=counts_from(args),
        workdir=workdir.resolve(),
        engines=args.engines,
        rate=args.rate,
        quiesce_s=args.timeout,
    )


def _progress(ctx: RunContext, status: str, began: float, total: int) -> Table:
    loop = asyncio.get_running_loop()
    table = Table(title=f"chaos: {status} ({loop.time() - began:.0f}s)", show_header=True)
    for col in ("placed", "ended", "faults", "violations so far"):
        table.add_column(col, justify="right")
    faults = ", ".join(f"{k} {n}" for k, n in sorted(ctx.faults.items())) or "-"
    seen = sum(len(v) for v in ctx.problems.values()) + sum(len(v) for v in ctx.exits.values())
    table.add_row(f"{ctx.placed_count()}/{total}", str(ctx.ended()), faults, str(seen))
    return table


async def _run(plan: ChaosPlan, console: Console, quiet: bool) -> dict[str, Any]:
    # SIGTERM (e.g. `timeout` in `make chaos`) stops the run like Ctrl-C: every process
    # it started is stopped on the way out.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    plan.workdir.mkdir(parents=True, exist_ok=True)
    log_file = (plan.workdir / "chaos.log").open("a")
    began = asyncio.get_running_loop().time()

    def log(message: str) -> None:
        stamp = datetime.now(UTC).strftime("%H:%M:%S")
        log_file.write(f"{stamp} {message}\n")
        log_file.flush()
        if not quiet:
            console.log(message)

    try:
        with Live(console=Console(quiet=True) if quiet else console, refresh_per_second=2) as live:

            def show(ctx: RunContext, status: str) -> None:
                live.update(_progress(ctx, status, began, plan.sagas))

            outcome = await run_chaos(plan, show, log)
    finally:
        log_file.close()
    return report.build(plan, outcome)


def main(args: argparse.Namespace) -> int:
    console = Console(stderr=args.json)
    try:
        plan = plan_from(args)
    except ScheduleError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.json:
        console.print(
            f"seed {plan.seed}: {len(plan.schedule)} faults over {plan.sagas} sagas; "
            f"work folder {plan.workdir}\nreplay: {report.replay_command(plan)}"
        )
    try:
        result = asyncio.run(_run(plan, console, args.json))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print(f"interrupted: every process was stopped; see {plan.workdir}", file=sys.stderr)
        return 130
    except SagasError as exc:
        print(f"error: {exc} (seed {plan.seed}, work folder {plan.workdir})", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        report.render(result, console)
    failed = bool(result["violations"])
    if not failed and not args.keep:
        shutil.rmtree(plan.workdir, ignore_errors=True)
    return 1 if failed else 0
