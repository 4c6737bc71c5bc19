"""`sagas check`: verify schemas, message classes, generated modules, compatibility and usages."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from sagas import Saga
from sagas.contracts.check import Report, run_check
from sagas.contracts.classmap import ClassMap
from sagas.contracts.codegen import default_output_dir
from sagas.contracts.compat import Mode
from sagas.contracts.messages import ALL_MESSAGES
from sagas.contracts.record import Record
from sagas.contracts.schemas import default_schemas_dir, release
from sagas.contracts.usages import Usage, load_usages
from sagas.errors import ConfigurationError


def project_usages() -> list[Usage]:
    """What the project's saga definitions and participant handlers read.

    Every shipped definition's `Saga.usages` (the types it starts from, sends,
    receives and publishes, and the fields it reads) and every shipped service's
    handlers (the command types handled with the fields read, the reply types returned,
    the events followed).
    """
    from services.definitions import all_definitions
    from services.shipped import all_participants

    found: list[Usage] = []
    for saga in all_definitions():
        found.extend(saga_usages(saga))
    for participant in all_participants():
        found.extend(participant.usages())
    return found


def saga_usages(saga: Saga[Any]) -> list[Usage]:
    """A definition's usages in the contracts checker's shape: one per message type,
    with every field the saga reads of it, and where the roles it plays."""
    fields: dict[str, list[str]] = {}
    roles: dict[str, list[str]] = {}
    for usage in saga.usages():
        fields.setdefault(usage.schema, [])
        roles.setdefault(usage.schema, [])
        if usage.field is not None:
            fields[usage.schema].append(usage.field)
        elif usage.role not in roles[usage.schema]:
            roles[usage.schema].append(usage.role)
    return [
        Usage(
            type=schema,
            fields=tuple(fields[schema]),
            where=f"saga {saga.name} ({', '.join(roles[schema]) or 'reads'})",
        )
        for schema in sorted(fields)
    ]


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sagas check`` on the CLI."""
    check = sub.add_parser(
        "check",
        help="verify schemas, message classes, generated modules, compatibility and usages "
        "(no broker)",
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
    check.add_argument(
        "--messages",
        action="append",
        default=[],
        metavar="MODULE",
        help="module (importable from the current folder) whose MESSAGES tuple of message "
        "classes joins the project's; may repeat",
    )
    check.add_argument(
        "--generated",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of the modules `sagas codegen` writes, compared with what it would write "
        "now (default: sagas/contracts/messages when checking the repository's schemas)",
    )
    check.set_defaults(handler=run)


def message_classes(modules: Iterable[str]) -> ClassMap:
    """The project's message classes plus the ``MESSAGES`` of each module named."""
    classes: list[type[Record]] = list(ALL_MESSAGES)
    for name in modules:
        if os.getcwd() not in sys.path:
            sys.path.insert(0, os.getcwd())  # as `python -m` does: `tutorial.messages` imports
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import {name}: {exc}") from exc
        extra = getattr(module, "MESSAGES", None)
        if not isinstance(extra, tuple | list):
            raise ConfigurationError(f"{name} has no MESSAGES tuple of message classes")
        classes += extra
    return ClassMap(classes)


def run(args: argparse.Namespace) -> int:
    """Run the checks, print the report, and release when asked and clean."""
    console = Console(highlight=False)
    root: Path = args.schemas or default_schemas_dir()
    usages: list[Usage] = project_usages()
    for path in args.usages:
        usages += load_usages(path)
    classes = message_classes(args.messages)
    generated: Path | None = args.generated
    if generated is None and root.resolve() == default_schemas_dir().resolve():
        generated = default_output_dir()  # that package is generated from these schemas
    report, tree = run_check(root, classes, Mode(args.mode), usages, generated)
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
