"""A small JSON codec for dataclasses, driven by their type hints (standard library only).

Values become JSON-compatible data (``None``, bools, numbers, strings, lists, dicts):
dataclasses become objects; `Record` instances carry their schema under ``"$type"`` so
that a field typed ``Record`` (or a union) can be decoded through a registry of message
classes; ``Decimal``, ``datetime``, ``date``, ``time`` and ``UUID`` become strings;
``timedelta`` becomes ``[days, seconds, microseconds]``; enums their value; tuples, lists
and sets lists; ``bytes`` hex.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import Enum
from functools import cache
from typing import Any, Union
from uuid import UUID

from sagas.contracts.record import Record

JSON = None | bool | int | float | str | list["JSON"] | dict[str, "JSON"]
TYPE_KEY = "$type"
Types = Mapping[str, type[Record]]

_STRINGS: dict[type, Any] = {
    Decimal: Decimal,
    datetime: datetime.fromisoformat,
    date: date.fromisoformat,
    time: time.fromisoformat,
    UUID: UUID,
    bytes: bytes.fromhex,
}


def to_json(value: object) -> JSON:
    """Encode ``value`` as JSON-compatible data (raises TypeError for unknown types)."""
    kind = type(value)
    encode = _ENCODERS.get(kind)
    if encode is None:
        encode = _ENCODERS[kind] = _encoder(kind)
    return encode(value)


_Encoder = typing.Callable[[Any], JSON]


def _same(value: Any) -> JSON:
    return value  # type: ignore[no-any-return]  # None, bool, int, float, str


def _encoder(kind: type) -> _Encoder:
    """How values of exactly ``kind`` are encoded, decided once per type (`to_json` is
    on the engine's path for every changed instance)."""
    if kind is type(None) or issubclass(kind, bool | int | float | str):
        return _same
    if issubclass(kind, Enum):
        return lambda v: to_json(v.value)
    if issubclass(kind, Decimal | UUID):
        return str
    if issubclass(kind, datetime | date | time):
        return lambda v: v.isoformat()
    if issubclass(kind, timedelta):
        return lambda v: [v.days, v.seconds, v.microseconds]
    if issubclass(kind, bytes):
        return lambda v: v.hex()
    if dataclasses.is_dataclass(kind):
        names = tuple(f.name for f in dataclasses.fields(kind) if f.init)
        if issubclass(kind, Record):

            def record(v: Any) -> JSON:
                out: dict[str, JSON] = {TYPE_KEY: v.SCHEMA}
                for name in names:
                    out[name] = to_json(getattr(v, name))
                return out

            return record
        return lambda v: {name: to_json(getattr(v, name)) for name in names}
    if issubclass(kind, list | tuple):
        return lambda v: [to_json(item) for item in v]
    if issubclass(kind, set | frozenset):
        return lambda v: sorted((to_json(item) for item in v), key=repr)
    if issubclass(kind, Mapping):
        return lambda v: {_key(k): to_json(item) for k, item in v.items()}

    def unknown(v: Any) -> JSON:
        raise TypeError(f"cannot encode {kind.__name__} as JSON")

    return unknown


_ENCODERS: dict[type, _Encoder] = {}


def _key(key: object) -> str:
    if isinstance(key, Enum):
        key = key.value
    if not isinstance(key, str):
        raise TypeError(f"dict keys must be str or str enums, got {type(key).__name__}")
    return key


def from_json(tp: Any, value: JSON, registry: Types) -> Any:
    """Decode ``value`` as type ``tp`` (the inverse of `to_json`).

    Raises:
        TypeError, ValueError: the value does not fit the type.
    """
    origin = typing.get_origin(tp)
    if tp is Any or tp is object:
        return _record(Record, value, registry) if _tagged(value) else value
    if origin is Union or origin is types.UnionType:
        return _union(typing.get_args(tp), value, registry)
    if origin is typing.Literal:
        return value
    if origin is not None:
        return _generic(origin, typing.get_args(tp), value, registry)
    if isinstance(tp, type) and issubclass(tp, Record):
        return _record(tp, value, registry)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, registry)
    return _scalar(tp, value)


def _tagged(value: JSON) -> bool:
    return isinstance(value, dict) and TYPE_KEY in value


def _union(args: tuple[Any, ...], value: JSON, registry: Types) -> Any:
    if value is None and type(None) in args:
        return None
    candidates = [a for a in args if a is not type(None)]
    if _tagged(value):
        return _record(Record, value, registry)
    errors: list[str] = []
    for arg in candidates:
        try:
            return from_json(arg, value, registry)
        except (TypeError, ValueError) as exc:
            errors.append(str(exc))
    raise TypeError(f"{value!r} fits none of {candidates}: {errors}")


def _generic(origin: Any, args: tuple[Any, ...], value: JSON, registry: Types) -> Any:
    if origin in (list, tuple, set, frozenset) or origin is typing.get_origin(typing.Sequence):
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {value!r}")
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = [from_json(a, v, registry) for a, v in zip(args, value, strict=True)]
        else:
            items = [from_json(args[0] if args else Any, v, registry) for v in value]
        return (
            list(items)
            if origin is list
            else origin(items)
            if origin in (set, frozenset)
            else tuple(items)
        )
    if origin in (dict, typing.get_origin(Mapping)):
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {value!r}")
        key_type, value_type = args or (str, Any)
        return {_scalar(key_type, k): from_json(value_type, v, registry) for k, v in value.items()}
    if origin is type:
        raise TypeError("types cannot be decoded")
    return from_json(origin, value, registry)


def _record(tp: type[Record], value: JSON, registry: Types) -> Record:
    if not isinstance(value, dict) or not isinstance(value.get(TYPE_KEY), str):
        raise TypeError(f"expected a tagged record, got {value!r}")
    schema = value[TYPE_KEY]
    assert isinstance(schema, str)
    cls = registry.get(schema)
    if cls is None:
        raise TypeError(f"unknown message type {schema!r}")
    if not issubclass(cls, tp):
        raise TypeError(f"{schema} is not a {tp.__name__}")
    record: Record = _dataclass(cls, value, registry)
    return record


def _dataclass(cls: type, value: JSON, registry: Types) -> Any:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object for {cls.__name__}, got {value!r}")
    hints = type_hints(cls)
    kwargs = {
        f.name: from_json(hints[f.name], value[f.name], registry)
        for f in dataclasses.fields(cls)
        if f.init and f.name in value
    }
    return cls(**kwargs)


@cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a class (computed once per class)."""
    return typing.get_type_hints(cls)


def _scalar(tp: Any, value: JSON) -> Any:
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(value)
    if tp is timedelta:
        if not isinstance(value, list) or len(value) != 3:
            raise TypeError(f"expected [days, seconds, microseconds], got {value!r}")
        days, seconds, micros = value
        return timedelta(days=_int(days), seconds=_int(seconds), microseconds=_int(micros))
    if tp in _STRINGS:
        if not isinstance(value, str):
            raise TypeError(f"expected a string for {tp.__name__}, got {value!r}")
        return _STRINGS[tp](value)
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (bool, int, str) and type(value) is tp:
        return value
    if tp is type(None) and value is None:
        return None
    raise TypeError(f"expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _int(value: JSON) -> int:
    if not isinstance(value, int):
        raise TypeError(f"expected an int, got {value!r}")
    return value
