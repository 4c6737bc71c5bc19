"""`sagas list`, `sagas show`, `sagas stuck`, `sagas stats`: reading the read model."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict
from datetime import UTC, date
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from sagas.app import load_app
from sagas.ops.commands.context import (
    ops_context,
    out,
    parse_duration,
    parse_since,
    print_json,
)
from sagas.ops.errors import AmbiguousError, NotFoundError
from sagas.ops.readmodel import InstanceRow, OpsStore, Query
from sagas.ops.readmodel.stats import parse_time, stats
from sagas.ops.views.timeline import instance_view

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

STATE_STYLE = {
    "COMPLETED": "green",
    "COMPENSATED": "blue",
    "FAILED": "bold red",
    "RUNNING": "yellow",
    "COMPENSATING": "magenta",
    "PAUSED": "cyan",
}


def add_parsers(sub: Sub) -> None:
    ls = sub.add_parser("list", help="list saga instances of every engine (read model)")
    add_query_options(ls)
    ls.add_argument("--limit", type=int, default=50, help="rows to show (default 50)")
    ls.add_argument("--offset", type=int, default=0, help="rows to skip")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(handler=lambda a: asyncio.run(list_command(a)))
    show = sub.add_parser("show", help="one saga: timeline, data, history, trace id")
    show.add_argument("saga_id", metavar="ID")
    show.add_argument("--saga", help="the saga type, when the id exists for several")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(handler=lambda a: asyncio.run(show_command(a)))
    stuck = sub.add_parser("stuck", help="the stalest sagas not ended, and what each waits for")
    stuck.add_argument("--saga", help="only this saga type")
    stuck.add_argument("--limit", type=int, default=20)
    stuck.add_argument("--json", action="store_true", help="print JSON")
    stuck.set_defaults(handler=lambda a: asyncio.run(stuck_command(a)))
    st = sub.add_parser("stats", help="completion and error rates, cycle time percentiles")
    st.add_argument("--saga", help="only this saga type")
    st.add_argument("--window", default="1h", help="how far back (e.g. 15m, 24h; default 1h)")
    st.add_argument("--json", action="store_true", help="print JSON")
    st.set_defaults(handler=lambda a: asyncio.run(stats_command(a)))


def add_query_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--saga", help="saga type")
    parser.add_argument(
        "--state", action="append", default=[], help="state (repeatable), e.g. FAILED"
    )
    parser.add_argument("--since", help="updated since: a duration ago (2h) or ISO date/time")
    parser.add_argument("--search", "-q", help="text in the saga id or data (case-insensitive)")


def query_of(args: argparse.Namespace) -> Query:
    return Query(
        saga=args.saga,
        states=tuple(s.upper() for s in args.state),
        since=parse_since(args.since) if args.since else None,
        text=args.search,
        limit=getattr(args, "limit", 50),
        offset=getattr(args, "offset", 0),
    )


def rows_table(rows: list[InstanceRow], title: str | None = None) -> Table:
    table = Table(title=title)
    for column in ("saga", "id", "state", "updated", "waiting for"):
        table.add_column(column, overflow="fold")
    for r in rows:
        style = STATE_STYLE.get(r.state, "")
        # Text(): values come from messages; never let rich read them as markup.
        table.add_row(
            Text(r.saga_name),
            Text(r.saga_id),
            Text(r.state, style=style),
            Text(r.updated_at),
            Text(r.waiting),
        )
    return table


async def list_command(args: argparse.Namespace) -> int:
    async with ops_context(load_app(args.app)) as ops:
        rows, total = await ops.store.select(query_of(args))
    if args.json:
        print_json({"total": total, "items": [asdict(r) for r in rows]})
        return 0
    out().print(rows_table(rows, f"{len(rows)} of {total} sagas"))
    return 0


async def resolve(store: OpsStore, saga_id: str, saga: str | None) -> InstanceRow:
    """The one instance named; raises `NotFoundError` or `AmbiguousError`."""
    found = await store.find(saga_id, saga)
    if not found:
        raise NotFoundError(f"no saga {saga_id!r}" + (f" of type {saga}" if saga else ""))
    if len(found) > 1:
        types = ", ".join(r.saga_name for r in found)
        raise AmbiguousError(f"{saga_id!r} exists for several sagas ({types}): add --saga")
    return found[0]


async def show_command(args: argparse.Namespace) -> int:
    async with ops_context(load_app(args.app)) as ops:
        row = await resolve(ops.store, args.saga_id, args.saga)
        body = await ops.store.body(row.saga_name, row.saga_id)
    view = instance_view(body or {})
    if args.json:
        print_json(view)
        return 0
    print_view(view)
    return 0


def _secs(value: float | None) -> str:
    return "" if value is None else f"{value:.3f} s"


WIDE = 100
"""Below this many columns `sagas show` drops the timeline's end and error columns
(errors are listed under the table)."""


def short_time(text: str | None, day: date | None) -> str:
    """A stored timestamp as ``HH:MM:SS.mmm`` (UTC) on ``day``, else with its date too:
    never more than 23 characters, so a time is never folded over several lines."""
    moment = parse_time(text) if text else None
    if moment is None:
        return text or ""
    moment = moment.astimezone(UTC)
    clock = moment.strftime("%H:%M:%S.") + f"{moment.microsecond // 1000:03d}"
    return clock if moment.date() == day else f"{moment.date().isoformat()} {clock}"


def print_view(view: dict[str, Any], console: Console | None = None) -> None:
    """`sagas show`: the head, the timeline, the data and the history, to fit the width.

    Times are UTC; those on the day the saga was created show the time of day only.
    """
    console = console or out()
    created = parse_time(view.get("created"))
    day = created.astimezone(UTC).date() if created else None
    state = str(view["state"])
    head = Text.assemble(
        (f"{view['saga']} v{view['version']}  ", "bold"),
        (str(view["saga_id"]), "bold"),
        "  ",
        (state, STATE_STYLE.get(state, "")),
    )
    console.print(head)
    for label in ("reason", "waiting_for", "trace_id", "created", "ended"):
        value = view.get(label)
        if value and label in ("created", "ended"):
            value = short_time(value, None) + " UTC"
        if value:
            console.print(Text(f"{label.replace('_', ' ')}: {value}"))
    wide = console.width >= WIDE
    console.print(_timeline(view, day, wide))
    errors = [(s["name"], s["error"]) for s in view["steps"] if s["error"]]
    if errors and not wide:
        for name, error in errors:
            console.print(Text(f"{name}: {error}"))
    console.print(Text("data: " + json.dumps(view["data"], indent=2, ensure_ascii=False)))
    history = Table(title="history (UTC)")
    history.add_column("seq", justify="right", no_wrap=True)
    history.add_column("at", no_wrap=True)
    # Narrow: one column for what came and what was decided, so the note has room.
    for column in ("input", "type", "note") if wide else ("input: decision",):
        history.add_column(column, overflow="fold")
    for e in view["history"]:
        said = [str(e.get(k, "") or "") for k in ("input", "type", "note")]
        cells = said if wide else [f"{said[1] or said[0]}: {said[2]}"]
        history.add_row(
            Text(str(e.get("seq", ""))),
            Text(short_time(e.get("at"), day)),
            *(Text(c) for c in cells),
        )
    console.print(history)


def _timeline(view: dict[str, Any], day: date | None, wide: bool) -> Table:
    steps = Table(title="timeline (UTC)")
    steps.add_column("step", overflow="fold")
    steps.add_column("status", overflow="fold")
    steps.add_column("tries", justify="right", no_wrap=True)
    steps.add_column("start", no_wrap=True)
    if wide:
        steps.add_column("end", no_wrap=True)
    steps.add_column("took", justify="right", no_wrap=True)
    if wide:
        steps.add_column("error", overflow="fold")

    def row(*cells: str, end: str, error: str) -> None:
        texts = [Text(c) for c in cells]
        if wide:
            texts.insert(4, Text(end))
            texts.append(Text(error))
        steps.add_row(*texts)

    for s in view["steps"]:
        row(
            s["name"],
            s["status"],
            str(s["attempts"]),
            short_time(s["started"], day),
            _secs(s["duration"]),
            end=short_time(s["ended"], day),
            error=s["error"] or "",
        )
        if s["compensation_started"]:
            row(
                f"  undo {s['name']}",
                "compensation",
                str(s["compensation_attempts"]),
                short_time(s["compensation_started"], day),
                "",
                end=short_time(s["compensation_ended"], day),
                error="",
            )
    return steps


async def stuck_command(args: argparse.Namespace) -> int:
    async with ops_context(load_app(args.app)) as ops:
        rows = await ops.store.stuck(args.saga, args.limit)
    if args.json:
        print_json([asdict(r) for r in rows])
        return 0
    out().print(rows_table(rows, "stalest sagas not ended (FAILED included)"))
    return 0


async def stats_command(args: argparse.Namespace) -> int:
    window = parse_duration(args.window)
    async with ops_context(load_app(args.app)) as ops:
        doc = await stats(ops.store, window, args.saga)
    if args.json:
        print_json(doc)
        return 0
    console = out()
    table = Table(title=f"last {args.window}")
    for column in ("saga / step", "started", "ended", "completion", "errors", "p50", "p95", "p99"):
        table.add_column(column)
    for name, s in doc["sagas"].items():
        ended = s["completed"] + s["compensated"] + s["failed"]
        table.add_row(
            Text(name, style="bold"),
            str(s["started"]),
            str(ended),
            _pct(s["completion_rate"]),
            _pct(s["error_rate"]),
            *(_secs(s["cycle_time"][p]) for p in ("p50", "p95", "p99")),
        )
        for step, t in s["steps"].items():
            table.add_row(
                Text(f"  {step}"),
                "",
                str(t["succeeded"] + t["failed"]),
                "",
                _pct(t["error_rate"]),
                *(_secs(t["duration"][p]) for p in ("p50", "p95", "p99")),
            )
    console.print(table)
    return 0


def _pct(value: float | None) -> str:
    return "" if value is None else f"{value:.1%}"
