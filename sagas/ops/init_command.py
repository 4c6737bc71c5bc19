"""``sagas init PATH``: a new project, complete and passing its own tests.

It writes, in a new or empty folder: ``pyproject.toml`` (``[tool.sagas]``, the package's
schemas as package data, pytest, ruff and mypy settings), the app, the Avro schemas of
one saga and two participants, the classes generated from them (as ``sagas codegen``
would), the saga, the participants, their tests and a README saying how to run it all.
The templates are in `sagas.scaffold`.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

from sagas.contracts.codegen import generate
from sagas.contracts.codegen.files import apply, changes
from sagas.contracts.schemas import load_tree
from sagas.errors import ConfigurationError
from sagas.scaffold import Names, check_package, framework_version, package_name, render


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sagas init`` on the CLI."""
    init = sub.add_parser(
        "init",
        help="create a project in a new or empty folder: app, schemas, generated classes, "
        "a saga, two participants, tests and a README",
    )
    init.add_argument("path", type=Path, metavar="PATH", help="the project's folder")
    init.add_argument(
        "--name",
        default=None,
        help="the Python package (default: the folder's name, lowercase, _ for - and .)",
    )
    init.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Write the project, generate its message classes, and say what to do next."""
    target: Path = args.path
    folder = target.resolve()
    names = Names(
        package=args.name or package_name(folder.name),
        project=folder.name,
        version=framework_version(),
    )
    check_package(names.package)
    files = render(names)
    refuse_existing(target, files)
    for relative, text in files.items():
        path = target / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    schemas = target / names.package / "schemas"
    sources = generate(load_tree(schemas))
    apply(sources, changes(target / names.package / "messages", sources))
    print(
        f"created {target}: package {names.package} with the booking saga, the rooms and "
        f"payments participants, {len(sources)} generated message modules and their tests"
    )
    print("next:")
    print(f"  cd {target}")
    print("  python3 -m venv .venv && . .venv/bin/activate && pip install -e '.[dev]'")
    print("  pytest && sagas check")
    print("  then README.md: run it on Kafka (sagas run, sagas serve rooms, ...)")
    return 0


def refuse_existing(target: Path, files: Iterable[PurePosixPath]) -> None:
    """Refuse a ``target`` that is a file, or a folder with anything in it.

    Raises:
        ConfigurationError: naming what is there, and which of its files the project
            would overwrite.
    """
    if target.exists() and not target.is_dir():
        raise ConfigurationError(f"{target} exists and is not a folder")
    if not target.is_dir():
        return
    present = sorted(p.name for p in target.iterdir())
    if not present:
        return
    clash = [str(relative) for relative in files if (target / relative).exists()]
    shown = ", ".join(present[:10]) + (
        f" and {len(present) - 10} more" if len(present) > 10 else ""
    )
    overwritten = (
        f"it would overwrite {', '.join(clash)}" if clash else "nothing would be overwritten"
    )
    raise ConfigurationError(
        f"{target} is not empty (it holds {shown}; {overwritten}): "
        "give sagas init a new or empty folder"
    )
