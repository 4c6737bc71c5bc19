"""Does a typed message class agree with its Avro schema, field by field?

Checked: the same field names; each field's Python type against its Avro type (see the
table below); optionality (``T | None`` exactly when the schema is a union of null and T);
defaults (present on both sides or neither, and equal). Nested records and enums are
compared recursively.

=====================  ===============================================
Python                 Avro
=====================  ===============================================
``str``                ``string``
``bytes``              ``bytes`` or ``fixed``
``int``                ``int`` or ``long``
``float``              ``float`` or ``double``
``bool``               ``boolean``
``Decimal``            ``bytes`` or ``fixed`` with logicalType ``decimal``
``datetime``           ``long`` with ``timestamp-millis`` or ``timestamp-micros``
``date``               ``int`` with ``date``
``StrEnum``            ``enum`` with the same symbols, in order
``tuple[T, ...]``      ``array`` of T
frozen dataclass       ``record`` with agreeing fields
``T | None``           ``["null", T]`` or ``[T, "null"]``
=====================  ===============================================

Schema defaults are turned into Python values by `sagas.contracts.defaults`.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sagas.contracts.avro_types import Node
from sagas.contracts.defaults import python_default
from sagas.contracts.errors import SchemaError

# Python type -> (Avro kinds, logical types) it agrees with.
_LEAVES: dict[Any, tuple[frozenset[str], frozenset[str | None]]] = {
    str: (frozenset({"string"}), frozenset({None})),
    bytes: (frozenset({"bytes", "fixed"}), frozenset({None})),
    int: (frozenset({"int", "long"}), frozenset({None})),
    float: (frozenset({"float", "double"}), frozenset({None})),
    bool: (frozenset({"boolean"}), frozenset({None})),
    Decimal: (frozenset({"bytes", "fixed"}), frozenset({"decimal"})),
    datetime: (frozenset({"long"}), frozenset({"timestamp-millis", "timestamp-micros"})),
    date: (frozenset({"int"}), frozenset({"date"})),
}


def disagreements(cls: type[Any], schema: Node) -> list[tuple[str, str]]:
    """``(field path, problem)`` for every way ``cls`` and its record schema differ."""
    found: list[tuple[str, str]] = []
    _Compare(found).record(cls, schema, "")
    return found


class _Compare:
    def __init__(self, found: list[tuple[str, str]]) -> None:
        self.found = found
        self.seen: set[tuple[Any, int]] = set()

    def record(self, cls: type[Any], node: Node, path: str) -> None:
        if (cls, id(node)) in self.seen:
            return
        self.seen.add((cls, id(node)))
        if node.kind != "record":
            self.found.append((path, f"class {cls.__name__} but schema has {node.describe()}"))
            return
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for name in fields.keys() - {f.name for f in node.fields}:
            self.found.append((_join(path, name), f"{cls.__name__}.{name} is not in the schema"))
        for avro in node.fields:
            where = _join(path, avro.name)
            py = fields.get(avro.name)
            if py is None:
                self.found.append((where, f"schema field is missing from {cls.__name__}"))
                continue
            self.field_type(hints[avro.name], avro.type, where)
            self.default(py, avro.has_default, avro.default, avro.type, where)

    def field_type(self, hint: Any, node: Node, path: str) -> None:
        origin, args = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            self.optional(hint, args, node, path)
        elif node.kind == "union":
            self.found.append((path, f"class says {_name(hint)}, schema says {node.describe()}"))
        elif origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            if node.kind != "array" or node.items is None:
                self.found.append((path, f"class has a tuple, schema says {node.describe()}"))
            else:
                self.field_type(args[0], node.items, path)
        elif isinstance(hint, type) and issubclass(hint, enum.Enum):
            self.enum(hint, node, path)
        elif isinstance(hint, type) and dataclasses.is_dataclass(hint):
            self.record(hint, node, path)
        elif hint in _LEAVES:
            kinds, logicals = _LEAVES[hint]
            if node.kind not in kinds or node.logical not in logicals:
                self.found.append(
                    (path, f"class says {_name(hint)}, schema says {node.describe()}")
                )
        else:
            self.found.append((path, f"unsupported Python type {_name(hint)}"))

    def optional(self, hint: Any, args: tuple[Any, ...], node: Node, path: str) -> None:
        others = [a for a in args if a is not type(None)]
        kinds = [b.kind for b in node.branches]
        if len(others) != 1 or len(args) != 2:
            self.found.append((path, f"unsupported union {_name(hint)}"))
        elif node.kind != "union" or len(kinds) != 2 or kinds.count("null") != 1:
            self.found.append(
                (path, f"class says optional, schema says {node.describe()} (want [null, T])")
            )
        else:
            self.field_type(others[0], node.branches[kinds.index("null") ^ 1], path)

    def enum(self, cls: type[enum.Enum], node: Node, path: str) -> None:
        symbols = tuple(str(member.value) for member in cls)
        if node.kind != "enum":
            self.found.append((path, f"class says {cls.__name__}, schema says {node.describe()}"))
        elif symbols != node.symbols:
            self.found.append(
                (path, f"{cls.__name__} has {list(symbols)}, schema enum has {list(node.symbols)}")
            )

    def default(
        self, py: dataclasses.Field[Any], has: bool, value: Any, node: Node, path: str
    ) -> None:
        if py.default is not dataclasses.MISSING:
            py_default: Any = py.default
        elif py.default_factory is not dataclasses.MISSING:
            py_default = py.default_factory()
        else:
            if has:
                self.found.append((path, f"schema default {value!r} but the class has none"))
            return
        if not has:
            self.found.append((path, f"class default {py_default!r} but the schema has none"))
            return
        try:
            schema_default = python_default(value, node)
        except SchemaError as exc:
            self.found.append((path, f"schema default {value!r:.40}: {exc.message}"))
            return
        if schema_default != py_default:
            self.found.append((path, f"defaults differ: class {py_default!r}, schema {value!r}"))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)
