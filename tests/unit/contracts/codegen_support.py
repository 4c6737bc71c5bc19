"""Small schema trees written to a temporary folder, and generated packages imported."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

from sagas.contracts.schemas import SchemaTree, load_tree


def field(name: str, avro: Any, doc: str | None = "A field.", **extra: Any) -> dict[str, Any]:
    """One record field (with a doc unless ``doc`` is None)."""
    found: dict[str, Any] = {"name": name, "type": avro, **extra}
    if doc is not None:
        found["doc"] = doc
    return found


def record(full: str, *fields: dict[str, Any], doc: str | None = "A record.") -> dict[str, Any]:
    """A record schema called ``full`` (``namespace.Name``)."""
    namespace, _, name = full.rpartition(".")
    found: dict[str, Any] = {"type": "record", "name": name, "fields": list(fields)}
    if namespace:
        found["namespace"] = namespace
    if doc is not None:
        found["doc"] = doc
    return found


def tree_of(root: Path, *schemas: dict[str, Any], kind: str = "events") -> SchemaTree:
    """``schemas`` written under ``root/<kind>/`` and loaded (errors raised)."""
    for schema in schemas:
        write(root, schema, kind)
    return load_tree(root).raise_errors()


def write(root: Path, schema: dict[str, Any], kind: str = "events") -> Path:
    """One schema file, named after its full name."""
    folder = root / kind
    folder.mkdir(parents=True, exist_ok=True)
    name = (
        schema["name"] if "namespace" not in schema else f"{schema['namespace']}.{schema['name']}"
    )
    path = folder / f"{name}.avsc"
    path.write_text(json.dumps(schema, indent=2), encoding="utf-8")
    return path


def write_package(folder: Path, sources: dict[str, str]) -> Path:
    """The generated files written into ``folder`` (created)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@contextmanager
def imported(parent: Path, sources: dict[str, str], name: str) -> Iterator[ModuleType]:
    """The generated package written to ``parent/name`` and imported; forgotten afterwards."""
    write_package(parent / name, sources)
    sys.path.insert(0, str(parent))
    importlib.invalidate_caches()
    try:
        yield importlib.import_module(name)
    finally:
        sys.path.remove(str(parent))
        for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
            del sys.modules[module]
