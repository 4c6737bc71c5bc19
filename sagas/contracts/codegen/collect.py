"""Which records and enums the schemas define, checked for what a Python class can hold.

Schemas are self-contained, so a nested type may be defined in several files: each
definition must be the same. Names must be usable in Python (keywords, mangled names,
names the generated modules use themselves are refused), and records may not contain
themselves (the codec's converters are compiled per class, once).
"""

from __future__ import annotations

import json
import keyword
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagas.contracts.avro_types import NAMED, Node, normalize, walk_named
from sagas.contracts.errors import SchemaError
from sagas.contracts.schemas import SchemaTree

# Names a generated module defines or imports itself: no class or namespace may take them.
RESERVED = frozenset(
    {"ALL_MESSAGES", "ClassMap", "ClassVar", "Decimal", "MESSAGES", "Record", "StrEnum"}
    | {"UTC", "annotations", "dataclass", "date", "datetime", "default_class_map"}
    | {"bool", "bytes", "float", "int", "str", "tuple"}
)


@dataclass
class Named:
    """A record or enum to generate.

    Attributes:
        node: its normalized Avro type.
        message: whether it has a schema file of its own (then it is a `Record`).
        schemas: the full names of the schemas that define it, sorted.
        files: those schemas' files, relative to the schemas folder.
    """

    node: Node
    message: bool
    schemas: list[str]
    files: set[str]

    @property
    def full(self) -> str:
        """The Avro full name."""
        return self.node.name or ""

    @property
    def namespace(self) -> str:
        """The Avro namespace: the module it goes to."""
        return self.full.rpartition(".")[0]

    @property
    def short(self) -> str:
        """The Avro name without namespace: the class name."""
        return self.full.rpartition(".")[2]


def collect(tree: SchemaTree) -> dict[str, Named]:
    """Every record and enum of the current schemas, by full name.

    Raises:
        SchemaError: two definitions of a name differ, a name is not usable in Python,
            or a record contains itself.
    """
    found: dict[str, Named] = {}
    shapes: dict[str, str] = {}
    for name, schema in sorted(tree.current.items()):
        file = _relative(schema.origin, tree.root)
        for node in walk_named(normalize(schema.raw)):
            full = node.name or ""
            if node.kind not in ("record", "enum"):
                continue  # a fixed is bytes: no class of its own
            shape = json.dumps(_shape(node, top=True), sort_keys=True, default=repr)
            known = found.get(full)
            if known is None:
                found[full] = Named(node, full in tree.current, [name], {file})
                shapes[full] = shape
            elif shapes[full] != shape:
                raise SchemaError(
                    f"{name}: {full} differs from its definition in {known.schemas[0]}; "
                    "a named type must be defined the same way in every schema"
                )
            else:
                known.schemas.append(name)
                known.files.add(file)
    for _, item in sorted(found.items()):
        _check_names(item)
    _check_recursion(found)
    return found


def _shape(node: Node, top: bool = False) -> Any:
    """Everything a generated class depends on, nested named types by name."""
    if node.kind in NAMED and not top:
        return node.name
    return {
        "kind": node.kind,
        "name": node.name,
        "doc": node.doc,
        "logical": [node.logical, node.precision, node.scale, node.size],
        "symbols": node.symbols,
        "fields": [
            [f.name, _shape(f.type), f.has_default, f.default if f.has_default else None, f.doc]
            for f in node.fields
        ],
        "items": None if node.items is None else _shape(node.items),
        "branches": [_shape(b) for b in node.branches],
    }


def _relative(origin: str, root: Path) -> str:
    try:
        return Path(origin).resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return Path(origin).name


def _check_names(item: Named) -> None:
    where = item.schemas[0]
    namespace = item.namespace
    if not namespace.isidentifier() or keyword.iskeyword(namespace) or namespace[0] == "_":
        raise SchemaError(
            f"{where}: {item.full} has namespace {namespace!r}, which is not a Python module "
            "name; use one word (the domain), e.g. 'orders'"
        )
    if namespace in RESERVED:
        raise SchemaError(f"{where}: namespace {namespace!r} is a name generated modules use")
    if keyword.iskeyword(item.short) or item.short in RESERVED:
        raise SchemaError(f"{where}: {item.full} cannot be a Python class name")
    for symbol in item.node.symbols:
        if keyword.iskeyword(symbol) or symbol.startswith("_") or symbol == "mro":
            raise SchemaError(f"{where}: symbol {symbol!r} of {item.full} cannot be an enum member")
    for field in item.node.fields:
        problem = None
        if keyword.iskeyword(field.name):
            problem = "is a Python keyword"
        elif field.name.startswith("__"):
            problem = "starts with two underscores (Python would mangle it)"
        elif field.name == "SCHEMA" and item.message:
            problem = "is the name of the class's SCHEMA constant"
        if problem:
            raise SchemaError(
                f"{where}: field {field.name!r} of {item.full} {problem}; "
                "a generated class cannot have it"
            )


def _check_recursion(named: dict[str, Named]) -> None:
    for full, item in sorted(named.items()):
        seen: set[str] = set()
        stack = [ref.name or "" for ref in references(item.node)]
        while stack:
            current = stack.pop()
            if current == full:
                raise SchemaError(
                    f"{item.schemas[0]}: record {full} contains itself; recursive records "
                    "are not supported"
                )
            if current not in seen and current in named:
                seen.add(current)
                stack += [ref.name or "" for ref in references(named[current].node)]


def references(node: Node) -> Iterator[Node]:
    """The records and enums the fields of ``node`` name (not looking inside them)."""
    stack = [f.type for f in node.fields]
    while stack:
        current = stack.pop()
        if current.kind in ("record", "enum"):
            yield current
        stack += current.branches
        if current.items is not None:
            stack.append(current.items)
