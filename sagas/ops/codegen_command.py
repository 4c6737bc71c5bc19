"""`sagas codegen`: write the typed message classes from the Avro schemas."""

from __future__ import annotations

import argparse
from pathlib import Path

from sagas.contracts.codegen import default_output_dir, generate
from sagas.contracts.codegen.files import apply, changes, shown
from sagas.contracts.schemas import default_schemas_dir, load_tree


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``sagas codegen`` on the CLI."""
    codegen = sub.add_parser(
        "codegen", help="write the typed message classes from the Avro schemas (no broker)"
    )
    codegen.add_argument(
        "--schemas", type=Path, default=None, help="schemas root (default: the repository's)"
    )
    codegen.add_argument(
        "--out",
        type=Path,
        default=None,
        help="folder of the generated package (default: sagas/contracts/messages)",
    )
    codegen.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 listing every file that would change",
    )
    codegen.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Generate, then write the files that changed (or, with ``--check``, list them)."""
    root: Path = args.schemas or default_schemas_dir()
    out: Path = args.out or default_output_dir()
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
