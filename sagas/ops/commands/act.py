"""`sagas retry|abort|resume|pause|unpause|retry-now|skip`: operator actions.

Each takes one saga id, or ``--where`` a query (bulk) with ``--dry-run`` to see the
targets first. The action goes to the saga's inbox; the command then watches the read
model for the history entry the engine writes, and reports it (or that the engine did
not apply the action before the deadline).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import getpass
from dataclasses import asdict
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from sagas.app import load_app
from sagas.contracts.messages.sagas import OperatorActionKind
from sagas.ops.actions import (
    ActionRequest,
    ActionResult,
    Sender,
    check_result,
    requested_now,
    wait_applied,
)
from sagas.ops.commands.context import Ops, out, parse_duration, print_json
from sagas.ops.commands.context import ops_context as open_ops
from sagas.ops.commands.query import STATE_STYLE, resolve, rows_table
from sagas.ops.errors import OpsError
from sagas.ops.readmodel import InstanceRow, Query
from sagas.runtime.partitioning import Partitioning

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

SIMPLE = {
    "retry": (OperatorActionKind.RETRY, "retry the failed step of a FAILED saga"),
    "abort": (OperatorActionKind.ABORT, "compensate a running saga now"),
    "resume": (OperatorActionKind.RESUME, "resume a saga FAILED in compensation"),
    "pause": (OperatorActionKind.PAUSE, "pause a running or compensating saga"),
    "unpause": (OperatorActionKind.UNPAUSE, "unpause a paused saga"),
    "retry-now": (OperatorActionKind.RETRY_NOW, "send a step waiting for its backoff now"),
}


def add_parsers(sub: Sub) -> None:
    for name, (kind, help_text) in SIMPLE.items():
        p = sub.add_parser(name, help=help_text)
        p.add_argument("saga_id", metavar="ID", nargs="?", help="the saga (or use --where)")
        if kind is OperatorActionKind.RETRY_NOW:
            p.add_argument("--step", help="only this step (default: every waiting one)")
        _common(p)
        p.set_defaults(handler=functools.partial(run, kind=kind), action_step=None)
    skip = sub.add_parser(
        "skip",
        help="complete a stuck step with a supplied reply (or mark a compensation done)",
        description="sagas skip ID STEP --result JSON, or sagas skip --where Q STEP ...",
    )
    skip.add_argument("target", nargs="+", metavar="ID STEP", help="the saga id and the step")
    skip.add_argument(
        "--result",
        help='the reply as JSON with its type: {"$type": "inventory.StockReserved", ...}',
    )
    _common(skip)
    skip.set_defaults(handler=functools.partial(run, kind=OperatorActionKind.SKIP))


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--saga", help="the saga type (when the id exists for several)")
    p.add_argument(
        "--where",
        help="bulk: a query, e.g. saga=order_fulfilment,state=FAILED,since=2h,search=acme "
        "(repeat state= for several)",
    )
    p.add_argument("--dry-run", action="store_true", help="show the targets, send nothing")
    p.add_argument("--actor", default=_os_user(), help="who asks (default: the OS user)")
    p.add_argument("--reason", default="", help="why, for the audit log")
    p.add_argument(
        "--wait", help="how long to wait for the engine (default SAGAS_OPS_ACTION_TIMEOUT)"
    )
    p.add_argument("--json", action="store_true", help="print JSON")


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "operator"


def parse_where(text: str) -> Query:
    """``saga=x,state=A,state=B,since=2h,search=t`` as a query (no row limit)."""
    from sagas.ops.commands.context import parse_since

    fields: dict[str, list[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key not in ("saga", "state", "since", "search"):
            raise OpsError(f"--where: expected saga=, state=, since= or search=, got {part!r}")
        fields.setdefault(key, []).append(value)
    return Query(
        saga=fields["saga"][-1] if "saga" in fields else None,
        states=tuple(s.upper() for s in fields.get("state", [])),
        since=parse_since(fields["since"][-1]) if "since" in fields else None,
        text=fields["search"][-1] if "search" in fields else None,
        limit=10_000,
    )


async def _targets(
    ops: Ops, args: argparse.Namespace, kind: OperatorActionKind
) -> list[InstanceRow]:
    if args.where:
        if args.saga_id:
            raise OpsError("give a saga id or --where, not both")
        return await ops.store.matching(parse_where(args.where))
    if not args.saga_id:
        raise OpsError("name a saga id, or select sagas with --where")
    return [await resolve(ops.store, args.saga_id, args.saga)]


def _split_skip(args: argparse.Namespace) -> None:
    """For skip, the positionals are ``ID STEP`` (or ``STEP`` with --where)."""
    target = list(args.target)
    if args.where:
        if len(target) != 1:
            raise OpsError("with --where, give only the step: sagas skip --where Q STEP")
        args.saga_id, args.action_step = None, target[0]
    else:
        if len(target) != 2:
            raise OpsError("sagas skip ID STEP [--result JSON]")
        args.saga_id, args.action_step = target


def _requests(
    ops: Ops, args: argparse.Namespace, kind: OperatorActionKind, rows: list[InstanceRow]
) -> list[ActionRequest]:
    step = args.action_step if kind is OperatorActionKind.SKIP else getattr(args, "step", None)
    result = None
    if kind is OperatorActionKind.SKIP and args.result:
        known = ops.app.latest
        names = {r.saga_name for r in rows}
        definition = known.get(next(iter(names))) if len(names) == 1 else None
        result = check_result(args.result, ops.codec.classes, definition)
    at = requested_now()
    return [
        ActionRequest(r.saga_name, r.saga_id, kind, args.actor, args.reason, at, step, result)
        for r in rows
    ]


def run(args: argparse.Namespace, kind: OperatorActionKind) -> int:
    return asyncio.run(act(args, kind))


async def act(args: argparse.Namespace, kind: OperatorActionKind) -> int:
    if kind is OperatorActionKind.SKIP:
        _split_skip(args)
    async with open_ops(load_app(args.app)) as ops:
        rows = await _targets(ops, args, kind)
        if args.dry_run or not rows:
            return _dry_run(args, kind, rows)
        if ops.bootstrap is None or ops.follower is None:
            raise OpsError("KAFKA_BOOTSTRAP_SERVERS is not set: cannot send operator actions")
        requests = _requests(ops, args, kind, rows)
        async with Sender(
            ops.bootstrap,
            ops.codec,
            ops.prefix,
            client_options=ops.client_options,
            key_of=Partitioning(ops.app.definitions, 1).key,
        ) as sender:
            await sender.send(requests)
        follower = ops.follower
        deadline = parse_duration(args.wait) if args.wait else ops.settings.ops_action_timeout

        async def refresh() -> None:
            await follower.poll(wait=0.3)

        results = await wait_applied(ops.store, requests, deadline, refresh)
    return _report(args, results, deadline.total_seconds())


def _dry_run(args: argparse.Namespace, kind: OperatorActionKind, rows: list[InstanceRow]) -> int:
    if args.json:
        print_json({"action": kind.value, "dry_run": True, "targets": [asdict(r) for r in rows]})
        return 0
    console = out()
    console.print(rows_table(rows, f"{kind.value} would go to {len(rows)} sagas"))
    if not rows:
        console.print("no saga matches")
    return 0


def _report(args: argparse.Namespace, results: list[ActionResult], waited: float) -> int:
    pending = [r for r in results if r.status == "pending"]
    if args.json:
        print_json([r.as_dict() for r in results])
    else:
        table = Table(title=f"{results[0].request.kind.value} by {results[0].request.actor}")
        for column in ("saga", "id", "outcome", "state now", "engine's note"):
            table.add_column(column, overflow="fold")
        for r in results:
            style = {"applied": "green", "rejected": "red"}.get(r.status, "yellow")
            table.add_row(
                Text(r.request.saga),
                Text(r.request.saga_id),
                Text(r.status, style=style),
                Text(r.state or "", style=STATE_STYLE.get(r.state or "", "")),
                Text(r.note or ""),
            )
        out().print(table)
    if pending:
        out().print(
            Text(
                f"{len(pending)} action(s) not applied within {waited:.0f} s: is an engine "
                "running for these sagas? The message is on the inbox and will be applied "
                "when one runs.",
                style="yellow",
            )
        )
    return 0 if all(r.status == "applied" for r in results) else 1
