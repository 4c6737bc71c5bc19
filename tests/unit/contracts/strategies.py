"""Typed message instances for tests: hypothesis strategies and deterministic samples.

Both are driven by each class's type hints and its schema (for integer widths), so a new
message class is covered without touching the tests.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from sagas.contracts.avro_types import Node

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)


def instances(cls: type[Any], node: Node) -> st.SearchStrategy[Any]:
    """Any valid instance of the record class ``cls`` whose schema node is ``node``."""
    hints = typing.get_type_hints(cls)
    kwargs = {
        f.name: _strategy(hints[f.name], _avro(node, f.name)) for f in dataclasses.fields(cls)
    }
    return st.builds(cls, **kwargs)


def _avro(node: Node, name: str) -> Node:
    found = node.field(name)
    assert found is not None, (node.name, name)
    return found.type


def _strategy(hint: Any, node: Node) -> st.SearchStrategy[Any]:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        branch = next(b for b in node.branches if b.kind != "null")
        return st.none() | _strategy(inner, branch)
    if origin is tuple:
        assert node.items is not None
        return st.lists(_strategy(args[0], node.items), max_size=4).map(tuple)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return st.sampled_from(list(hint))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return instances(hint, node)
    if hint is int:
        low, high = INT32 if node.kind == "int" else INT64
        return st.integers(low, high)
    if hint is Decimal:
        digits = (node.precision or 12) - (node.scale or 0)
        bound = Decimal(10) ** digits - Decimal(1).scaleb(-(node.scale or 0))
        return st.decimals(-bound, bound, places=node.scale or 0, allow_nan=False)
    if hint is datetime:
        millis = st.integers(-(10**12), 10**13)
        return millis.map(lambda ms: _EPOCH + timedelta(milliseconds=ms))
    if hint is date:
        return st.dates(date(1900, 1, 1), date(2200, 1, 1))
    if hint is bytes and node.kind == "fixed":
        return st.binary(min_size=node.size or 0, max_size=node.size or 0)
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: st.text(max_size=20),
        bytes: st.binary(max_size=20),
        bool: st.booleans(),
        float: st.floats(allow_nan=False, width=32 if node.kind == "float" else 64),
    }
    return simple[hint]


def sample(cls: type[Any], seed: int = 0) -> Any:
    """A deterministic, valid instance of ``cls`` (varied a little by ``seed``)."""
    hints = typing.get_type_hints(cls)
    return cls(**{f.name: _value(hints[f.name], f.name, seed) for f in dataclasses.fields(cls)})


def _value(hint: Any, name: str, seed: int) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        inner = next(a for a in args if a is not type(None))
        return None if seed % 2 else _value(inner, name, seed)
    if origin is tuple:
        return tuple(_value(args[0], name, seed + i) for i in range(1 + seed % 3))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        members = list(hint)
        return members[seed % len(members)]
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return sample(hint, seed)
    values: dict[Any, Any] = {
        str: f"{name}-{seed}",
        int: 1 + seed,
        bool: seed % 2 == 0,
        Decimal: Decimal(f"{12 + seed}.34"),
        datetime: datetime(2024, 5, 1, 12, seed % 60, 7, 123000, tzinfo=UTC),
        date: date(2024, 6, 1 + seed % 28),
        bytes: bytes([seed % 256]),
        float: 1.5 + seed,
    }
    return values[hint]
