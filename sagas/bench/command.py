"""`sagas bench`: run every phase on one broker, print a table, write JSON and a plot."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
from pathlib import Path

from sagas.bench import report
from sagas.bench.harness import bench_broker
from sagas.bench.suite import run_all


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = sub.add_parser("bench", help="measure throughput, latency, scaling and costs")
    bench.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    bench.add_argument("--out", type=Path, help="also write the JSON result to this file")
    bench.add_argument("--plot", type=Path, help="write the load sweep plot (PNG) here")
    bench.add_argument("--docs", type=Path, help="regenerate the results table in this file")
    bench.add_argument("--profile", type=Path, help="py-spy profile of the saturated engine")
    bench.add_argument("--duration", type=float, default=15.0, help="seconds per saturation run")
    bench.add_argument("--ramp", type=float, default=3.0, help="seconds before measuring")
    bench.add_argument(
        "--warmup", type=int, default=50, help="orders run to completion before measuring"
    )
    bench.add_argument("--step", type=float, default=10.0, help="seconds per sweep step")
    bench.add_argument(
        "--drain", type=float, default=15.0, help="seconds the sweep waits for its last orders"
    )
    bench.add_argument(
        "--probe-hops", type=int, default=200, help="hops the probe measures, of each kind"
    )
    bench.add_argument(
        "--probe-warmup", type=int, default=20, help="hops the probe runs before measuring"
    )
    bench.add_argument(
        "--scaling",
        default="1:1,1:3,1:12,2:1,2:3,2:12",
        help="ENGINES:PARTITIONS runs of the scaling phase, comma-separated",
    )
    bench.add_argument(
        "--state-scale",
        type=float,
        default=1.0,
        help="scale the stored-saga counts of restore_s_100k and rss_mb (smoke tests)",
    )
    bench.add_argument("--skip-state", action="store_true", help="leave restore and rss out")
    bench.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    bench.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sagas-bench-"))
    try:
        # The dev broker starts and stops outside the event loop (its start is blocking).
        with bench_broker(workdir) as broker:
            result = asyncio.run(run_all(args, broker, workdir, _progress))
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            _progress(f"work folder kept: {workdir}")
    report.print_table(result, sys.stderr if args.json else sys.stdout)
    text = json.dumps(result, indent=2, sort_keys=True)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.plot:
        from sagas.bench.plot import plot

        plot(result, args.plot)
    if args.docs:
        report.update_docs(args.docs, result)
    if args.json:
        print(text)
    return 0


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
