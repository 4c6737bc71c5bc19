"""The `schemas/` folder: current Avro schemas, their released history, and stable ids.

Layout::

    schemas/events/<namespace>.<Name>.avsc      one record a file, file name = full name
    schemas/commands/...
    schemas/replies/...
    schemas/history/<namespace>.<Name>/v<N>.avsc every released version, current included

Schemas are self-contained: nested records and enums are defined inline, so every file
registers on its own in a Confluent-compatible registry (subject = full name,
the RecordNameStrategy).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro

from sagas.contracts.errors import SchemaError

KINDS = ("events", "commands", "replies")
HISTORY = "history"
_VERSION_FILE = re.compile(r"^v([1-9][0-9]*)\.avsc$")

JsonSchema = dict[str, Any]


def canonical_json(schema: Mapping[str, Any]) -> str:
    """The schema as compact JSON with sorted keys: equal schemas give equal strings."""
    return json.dumps(schema, sort_keys=True, separators=(",", ":"))


def schema_id(subject: str, schema: Mapping[str, Any]) -> int:
    """A stable id for one version of a subject, from its subject and content.

    The same schema text gets the same id on every machine and in every run, whatever
    order the files are read in. Ids are positive 31-bit integers, as in Confluent.
    """
    digest = hashlib.sha256(f"{subject}\n{canonical_json(schema)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF or 1


def full_name(schema: Mapping[str, Any]) -> str:
    """The Avro full name of a named schema (``namespace.name``)."""
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def parse(schema: Any, origin: str) -> dict[str, Any]:
    """Parse a JSON schema with fastavro; any problem becomes a `SchemaError` naming ``origin``."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise SchemaError(f"{origin}: top-level schema must be an Avro record")
    try:
        parsed = fastavro.parse_schema(schema)
    except Exception as exc:  # fastavro raises several unrelated exception types
        raise SchemaError(f"{origin}: not a valid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict):
        raise SchemaError(f"{origin}: top-level schema must be an Avro record")
    return parsed


@dataclass(frozen=True)
class SchemaFile:
    """One Avro record schema as read from a file or a registry.

    Attributes:
        name: the Avro full name.
        raw: the schema as JSON data.
        parsed: the same, parsed by fastavro (ready for reading and writing).
        origin: where it came from (a path, or ``registry id N``), for messages.
    """

    name: str
    raw: JsonSchema
    parsed: dict[str, Any] = field(repr=False, compare=False)
    origin: str = ""

    @classmethod
    def from_json(cls, raw: Any, origin: str) -> SchemaFile:
        """Validate and parse ``raw``; raises `SchemaError`."""
        parsed = parse(raw, origin)
        return cls(name=full_name(raw), raw=raw, parsed=parsed, origin=origin)

    @classmethod
    def read(cls, path: Path) -> SchemaFile:
        """Read and parse one ``.avsc`` file; raises `SchemaError`."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaError(f"{path}: cannot read JSON: {exc}") from exc
        return cls.from_json(raw, str(path))


@dataclass
class SchemaTree:
    """Everything under one ``schemas/`` root.

    Attributes:
        root: the folder.
        current: the current schema of every record, by full name.
        kinds: ``events``, ``commands`` or ``replies`` for every current schema.
        history: released versions of every record, by full name, oldest first.
        errors: problems met while loading (files that could not be used).
    """

    root: Path
    current: dict[str, SchemaFile] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    history: dict[str, list[tuple[int, SchemaFile]]] = field(default_factory=dict)
    errors: list[SchemaError] = field(default_factory=list)

    def raise_errors(self) -> SchemaTree:
        """Raise the first loading problem, if any; returns self."""
        if self.errors:
            raise self.errors[0]
        return self


def load_tree(root: Path) -> SchemaTree:
    """Load current schemas and their history, collecting problems instead of stopping."""
    tree = SchemaTree(root=root)
    if not root.is_dir():
        tree.errors.append(SchemaError(f"{root}: schemas folder does not exist"))
        return tree
    for kind in KINDS:
        for path in sorted((root / kind).glob("*.avsc")):
            _load_current(tree, kind, path)
    history = root / HISTORY
    if history.is_dir():
        for folder in sorted(p for p in history.iterdir() if p.is_dir()):
            _load_history(tree, folder)
    return tree


def _load_current(tree: SchemaTree, kind: str, path: Path) -> None:
    try:
        schema = SchemaFile.read(path)
    except SchemaError as exc:
        tree.errors.append(exc)
        return
    if path.stem != schema.name:
        tree.errors.append(
            SchemaError(f"{path}: file name must be the schema's full name {schema.name}.avsc")
        )
        return
    if schema.name in tree.current:
        other = tree.current[schema.name].origin
        tree.errors.append(SchemaError(f"{path}: {schema.name} is also defined in {other}"))
        return
    tree.current[schema.name] = schema
    tree.kinds[schema.name] = kind


def _load_history(tree: SchemaTree, folder: Path) -> None:
    versions: list[tuple[int, SchemaFile]] = []
    for path in sorted(folder.glob("*.avsc")):
        match = _VERSION_FILE.match(path.name)
        if match is None:
            tree.errors.append(SchemaError(f"{path}: history files are named v<N>.avsc"))
            continue
        try:
            schema = SchemaFile.read(path)
        except SchemaError as exc:
            tree.errors.append(exc)
            continue
        if schema.name != folder.name:
            tree.errors.append(SchemaError(f"{path}: holds {schema.name}, not {folder.name}"))
            continue
        versions.append((int(match.group(1)), schema))
    versions.sort(key=lambda item: item[0])
    tree.history[folder.name] = versions


def release(tree: SchemaTree) -> list[Path]:
    """Record every current schema that differs from its last released version.

    Writes ``history/<full.name>/v<N+1>.avsc`` and returns the paths written.
    """
    written: list[Path] = []
    for name, schema in sorted(tree.current.items()):
        versions = tree.history.get(name, [])
        if versions and canonical_json(versions[-1][1].raw) == canonical_json(schema.raw):
            continue
        number = versions[-1][0] + 1 if versions else 1
        path = tree.root / HISTORY / name / f"v{number}.avsc"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(schema.raw, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    return written


def merge(base: SchemaTree, extra: SchemaTree) -> SchemaTree:
    """One tree holding both: ``extra``'s root, every schema and released version of each.

    A record defined in both is an error of the merged tree (an app's schemas must not
    redefine the framework's own).
    """
    merged = SchemaTree(
        root=extra.root,
        current={**base.current},
        kinds={**base.kinds},
        history={**base.history},
        errors=[*base.errors, *extra.errors],
    )
    for name, schema in extra.current.items():
        if name in merged.current:
            other = merged.current[name].origin
            merged.errors.append(
                SchemaError(f"{schema.origin}: {name} is already defined by {other}")
            )
            continue
        merged.current[name] = schema
        merged.kinds[name] = extra.kinds[name]
    for name, versions in extra.history.items():
        if name in base.history:
            merged.errors.append(
                SchemaError(f"{extra.root}/history/{name}: {name} is the framework's own")
            )
            continue
        merged.history[name] = versions
    return merged
