"""`sagas codegen`: write the typed message classes from the Avro schemas."""

from __future__ import annotations

import argparse
from pathlib import Path

from sagas.contracts.codegen import generate
from sagas.contracts.codegen.files import apply, changes, shown
from sagas.contracts.schemas import load_tree
from sagas.errors import ConfigurationError
from sagas.project import find_project


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sagas codegen`` on the CLI."""
    codegen = sub.add_parser(
        "codegen", help="write the typed message classes from the Avro schemas (no broker)"
    )
    codegen.add_argument(
        "--schemas",
        type=Path,
        default=None,
        help="schemas root (default: [tool.sagas] schemas of the project's pyproject.toml)",
    )
    codegen.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder of the generated package (default: [tool.sagas] messages)",
    )
    codegen.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 listing every file that would change",
    )
    codegen.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Generate, then write the files that changed (or, with ``--check``, list them)."""
    root, out = folders(args.schemas, args.out)
    sources = generate(load_tree(root))
    found = changes(out, sources)
    if args.check:
        for change in found:
            print(f"{change.shown()}: {change.describe()}")
        if found:
            print(f"{len(found)} generated file(s) out of date")
            return 1
        print(f"{len(sources)} generated files in {shown(out)} are up to date")
        return 0
    apply(sources, found)
    for change in found:
        verb = "removed" if change.action == "remove" else "wrote"
        print(f"{verb} {change.shown()}")
    unchanged = len(sources) - sum(change.action != "remove" for change in found)
    print(f"{unchanged} of {len(sources)} generated files in {shown(out)} were up to date")
    return 0


def folders(schemas: Path | None, out: Path | None) -> tuple[Path, Path]:
    """The schemas folder and the output folder: as given, else from ``[tool.sagas]``.

    The app itself is not loaded: it imports the very classes being generated.
    """
    if schemas is not None and out is not None:
        return schemas, out
    project = find_project()
    schemas = schemas or (project.schemas if project else None)
    out = out or (project.messages if project else None)
    if schemas is None or out is None:
        missing = " and ".join(
            f"--{flag} (or [tool.sagas] {key})"
            for flag, key, value in (("schemas", "schemas", schemas), ("out", "messages", out))
            if value is None
        )
        raise ConfigurationError(f"sagas codegen needs {missing} in pyproject.toml")
    return schemas, out
