"""`sagas check`: verify schemas, message classes, compatibility and usages; no broker."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sagas.contracts.check import Report, run_check
from sagas.contracts.compat import Mode
from sagas.contracts.messages import default_class_map
from sagas.contracts.schemas import default_schemas_dir, release
from sagas.contracts.usages import Usage, load_usages


def project_usages() -> list[Usage]:
    """What the project's saga definitions and handlers read.

    The plug point for the saga engine and the services: each returns its
    ``Iterable[Usage]`` and is added here. Until they exist, there are none.
    """
    return []


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sagas check`` on the CLI."""
    check = sub.add_parser(
        "check", help="verify schemas, message classes, compatibility and usages (no broker)"
    )
    check.add_argument(
        "--schemas", type=Path, default=None, help="schemas root (default: the repository's)"
    )
    check.add_argument(
        "--mode",
        choices=[mode.value for mode in Mode],
        default=Mode.BACKWARD.value,
        help="compatibility with released versions to enforce (default BACKWARD)",
    )
    check.add_argument(
        "--release",
        action="store_true",
        help="when everything passes, record the current schemas as released versions",
    )
    check.add_argument(
        "--usages",
        type=Path,
        action="append",
        default=[],
        help="JSON file of extra usages ([{type, fields, where}]); may repeat",
    )
    check.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks, print the report, and release when asked and clean."""
    console = Console(highlight=False)
    root: Path = args.schemas or default_schemas_dir()
    usages: list[Usage] = project_usages()
    for path in args.usages:
        usages += load_usages(path)
    report, tree = run_check(root, default_class_map(), Mode(args.mode), usages)
    print_report(report, console)
    if not report.ok:
        return 1
    if args.release:
        written = release(tree)
        for path in written:
            console.print(f"released {path.relative_to(root)}")
        if not written:
            console.print("nothing to release: every schema matches its last released version")
    return 0


def print_report(report: Report, console: Console) -> None:
    """A summary line, then a table of problems (schema, field, check, message)."""
    console.print(
        f"[bold]sagas check[/bold] {report.root}: {report.schemas} schemas, "
        f"{report.classes} message classes, {report.released_versions} released versions "
        f"({report.mode.value}), {report.usages} usages"
    )
    if report.unreleased:
        console.print(f"unreleased (no history yet): {_short(report.unreleased)}")
    if report.ok:
        console.print("[green]OK[/green]: no problems")
        return
    table = Table(title=f"{len(report.problems)} problem(s)", show_lines=False)
    for column in ("schema", "field", "check", "problem"):
        table.add_column(column, overflow="fold")
    for problem in report.problems:
        table.add_row(problem.schema, problem.field or "-", problem.check, problem.message)
    console.print(table)


def _short(names: Iterable[str], limit: int = 8) -> str:
    items = list(names)
    head = ", ".join(items[:limit])
    return head + (f" and {len(items) - limit} more" if len(items) > limit else "")
