"""`sagas check`: verify schemas, message classes, generated modules, compatibility and usages."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sagas.app import load_app
from sagas.contracts import framework
from sagas.contracts.check import Report, run_check
from sagas.contracts.classmap import ClassMap
from sagas.contracts.compat import Mode
from sagas.contracts.schemas import release
from sagas.contracts.usages import Usage, load_usages
from sagas.errors import ConfigurationError


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sagas check`` on the CLI."""
    check = sub.add_parser(
        "check",
        help="verify schemas, message classes, generated modules, compatibility and usages "
        "(no broker)",
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
    """Run the checks on the app's schemas, print the report, and release when asked."""
    console = Console(highlight=False)
    app = load_app(args.app)
    if app.schemas is None:
        raise ConfigurationError(f"app {app.name} has no schemas folder (App(schemas=...))")
    usages: list[Usage] = app.usages()
    for path in args.usages:
        usages += load_usages(path)
    classes = ClassMap(app.message_classes)
    report, tree = run_check(
        app.schemas,
        classes,
        Mode(args.mode),
        usages,
        generated=app.messages_dir,
        known=framework.schema_tree().current,
    )
    print_report(report, console)
    if not report.ok:
        return 1
    if args.release:
        written = release(tree)
        for path in written:
            console.print(f"released {path.relative_to(app.schemas)}")
        if not written:
            console.print("nothing to release: every schema matches its last released version")
    return 0


def print_report(report: Report, console: Console) -> None:
    """A summary line, then a table of problems (schema, field, check, message)."""
    console.print(
        f"[bold]sagas check[/bold] {report.root}: {report.schemas} schemas, "
        f"{report.classes} message classes, {report.released_versions} released versions "
        f"({report.mode.value}), {report.usages} usages"
        + ("" if report.generated is None else f", {report.generated} generated files")
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
