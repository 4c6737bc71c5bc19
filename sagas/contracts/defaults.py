"""The Python value an Avro field default stands for.

A schema writes a default as JSON in the type of the field (for a union, of its first
branch): bytes and fixed as a string of code points 0-255, a decimal as the big-endian
two's-complement bytes of its unscaled value, a date as days since 1970-01-01, a timestamp
as milli- or microseconds since the epoch (UTC), an enum as one of its symbols, an array as
a list. `python_default` turns that JSON into the value a message class holds, so the
agreement check can compare a class's defaults with its schema's and `sagas codegen` can
write them as Python literals.
"""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sagas.contracts.avro_types import Node
from sagas.contracts.errors import SchemaError

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_DAY = date(1970, 1, 1)


def python_default(value: Any, node: Node) -> Any:
    """The Python value of the JSON default ``value`` of a field of type ``node``.

    ``None`` for null; ``bool``, ``int``, ``float``, ``str``, ``bytes``; the symbol (a
    ``str``, equal to its `enum.StrEnum` member) for an enum; a tuple for an array;
    ``Decimal``, ``date`` and aware ``datetime`` for those logical types.

    Raises:
        SchemaError: the value does not fit the type, or defaults of that type (records,
            maps, other logical types) are not supported.
    """
    if node.kind == "union":
        if not node.branches:
            raise SchemaError("a union without branches has no default")
        return python_default(value, node.branches[0])
    if node.logical is not None:
        return _logical(value, node)
    kind = node.kind
    if kind == "null":
        return _expect(value, value is None, node)
    if kind == "boolean":
        return _expect(value, isinstance(value, bool), node)
    if kind in ("int", "long"):
        return _expect(value, isinstance(value, int) and not isinstance(value, bool), node)
    if kind in ("float", "double"):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return float(_expect(value, number and math.isfinite(value), node))
    if kind == "string":
        return _expect(value, isinstance(value, str), node)
    if kind in ("bytes", "fixed"):
        return _bytes(value, node)
    if kind == "enum":
        return _expect(value, isinstance(value, str) and value in node.symbols, node)
    if kind == "array" and node.items is not None:
        items = node.items
        listed = _expect(value, isinstance(value, list), node)
        return tuple(python_default(item, items) for item in listed)
    raise SchemaError(f"a default for {node.describe()} is not supported")


def _logical(value: Any, node: Node) -> Any:
    try:
        return _logical_value(value, node)
    except OverflowError:
        raise SchemaError(f"default {value!r:.40} is out of range for {node.describe()}") from None


def _logical_value(value: Any, node: Node) -> Any:
    if node.logical == "decimal" and node.kind in ("bytes", "fixed"):
        unscaled = int.from_bytes(_bytes(value, node), "big", signed=True)
        return Decimal(unscaled).scaleb(-(node.scale or 0))
    whole = isinstance(value, int) and not isinstance(value, bool)
    if node.logical == "date" and node.kind == "int":
        return _EPOCH_DAY + timedelta(days=_expect(value, whole, node))
    if node.logical == "timestamp-millis" and node.kind == "long":
        return _EPOCH + timedelta(milliseconds=_expect(value, whole, node))
    if node.logical == "timestamp-micros" and node.kind == "long":
        return _EPOCH + timedelta(microseconds=_expect(value, whole, node))
    raise SchemaError(f"a default for {node.describe()} is not supported")


def _bytes(value: Any, node: Node) -> bytes:
    try:
        return bytes(_expect(value, isinstance(value, str), node), "latin-1")
    except UnicodeEncodeError:
        raise SchemaError(
            f"default {value!r:.40} for {node.describe()} has a code point above 255"
        ) from None


def _expect(value: Any, fits: bool, node: Node) -> Any:
    if not fits:
        raise SchemaError(f"default {value!r:.40} does not fit {node.describe()}")
    return value
