"""A small normalized view of Avro JSON schemas, for the checks in `sagas check`.

fastavro validates and parses schemas; this module only turns the JSON into uniform
`Node`\\ s (named references resolved, unions explicit) that the compatibility rules,
the class agreement check and the usage check walk.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
_NO_DEFAULT = object()


@dataclass(eq=False)
class Field:
    """One field of a record node."""

    name: str
    type: Node
    default: Any = _NO_DEFAULT
    aliases: tuple[str, ...] = ()
    doc: str | None = None

    @property
    def has_default(self) -> bool:
        """Whether the schema gives the field a default."""
        return self.default is not _NO_DEFAULT


@dataclass(eq=False)
class Node:
    """One Avro type.

    ``kind`` is a primitive name, ``record``, ``enum``, ``fixed``, ``array``, ``map`` or
    ``union``. Named nodes are shared: every reference to a name is the same object.
    """

    kind: str
    name: str | None = None
    doc: str | None = None
    logical: str | None = None
    precision: int | None = None
    scale: int | None = None
    size: int | None = None
    aliases: tuple[str, ...] = ()
    fields: list[Field] = field(default_factory=list)
    symbols: tuple[str, ...] = ()
    default: Any = _NO_DEFAULT
    items: Node | None = None
    branches: list[Node] = field(default_factory=list)

    def describe(self) -> str:
        """Short text for messages, e.g. ``long (timestamp-millis)`` or ``record orders.X``."""
        if self.kind in NAMED:
            return f"{self.kind} {self.name}"
        if self.kind == "array" and self.items is not None:
            return f"array<{self.items.describe()}>"
        if self.kind == "map" and self.items is not None:
            return f"map<{self.items.describe()}>"
        if self.kind == "union":
            return "union[" + ", ".join(b.describe() for b in self.branches) + "]"
        if self.logical == "decimal":
            return f"{self.kind} (decimal({self.precision},{self.scale}))"
        return f"{self.kind} ({self.logical})" if self.logical else self.kind

    def field(self, name: str) -> Field | None:
        """The record field called ``name``, if any."""
        return next((f for f in self.fields if f.name == name), None)

    def has_default_symbol(self) -> bool:
        """Whether an enum node declares a default symbol."""
        return self.default is not _NO_DEFAULT


def normalize(schema: Any) -> Node:
    """The `Node` tree of a JSON schema that fastavro already accepted."""
    return _Builder().build(schema, "")


class _Builder:
    def __init__(self) -> None:
        self.names: dict[str, Node] = {}

    def build(self, schema: Any, namespace: str) -> Node:
        if isinstance(schema, list):
            return Node("union", branches=[self.build(b, namespace) for b in schema])
        if isinstance(schema, str):
            if schema in PRIMITIVES:
                return Node(schema)
            return self.names[_full(schema, namespace)]
        if not isinstance(schema, Mapping):
            raise ValueError(f"not an Avro schema: {schema!r:.60}")
        kind = schema["type"]
        if kind in NAMED:
            return self._named(schema, namespace)
        if kind == "array":
            return Node("array", items=self.build(schema["items"], namespace))
        if kind == "map":
            return Node("map", items=self.build(schema["values"], namespace))
        if isinstance(kind, str) and kind in PRIMITIVES:
            return Node(
                kind,
                logical=schema.get("logicalType"),
                precision=schema.get("precision"),
                scale=schema.get("scale", 0 if schema.get("logicalType") == "decimal" else None),
            )
        return self.build(kind, namespace)

    def _named(self, schema: Mapping[str, Any], namespace: str) -> Node:
        name = _full(schema["name"], str(schema.get("namespace", namespace)))
        own_namespace = name.rpartition(".")[0]
        node = Node(
            "record" if schema["type"] == "error" else schema["type"],
            name=name,
            doc=schema.get("doc"),
            aliases=tuple(_full(a, own_namespace) for a in schema.get("aliases", ())),
            symbols=tuple(schema.get("symbols", ())),
            size=schema.get("size"),
            logical=schema.get("logicalType"),
            precision=schema.get("precision"),
            scale=schema.get("scale"),
        )
        if "default" in schema and node.kind == "enum":
            node.default = schema["default"]
        self.names[name] = node  # before the fields: a record may refer to itself
        for raw in schema.get("fields", ()):
            node.fields.append(
                Field(
                    name=raw["name"],
                    type=self.build(raw["type"], own_namespace),
                    default=raw.get("default", _NO_DEFAULT),
                    aliases=tuple(raw.get("aliases", ())),
                    doc=raw.get("doc"),
                )
            )
        return node


def _full(name: str, namespace: str) -> str:
    if "." in name or not namespace:
        return name
    return f"{namespace}.{name}"


def walk_named(node: Node) -> list[Node]:
    """Every named node reachable from ``node`` (records, enums, fixed), each once."""
    seen: dict[int, Node] = {}
    stack = [node]
    while stack:
        current = stack.pop()
        if current.kind in NAMED:
            if id(current) in seen:
                continue
            seen[id(current)] = current
        stack.extend(f.type for f in current.fields)
        stack.extend(current.branches)
        if current.items is not None:
            stack.append(current.items)
    return list(seen.values())
