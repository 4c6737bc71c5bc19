"""Generic conversion between typed message classes and the dicts fastavro reads and writes.

Driven by the dataclasses' type hints, compiled once per class. Supported field types:
``str``, ``bytes``, ``int``, ``float``, ``bool``, ``Decimal``, ``datetime`` (aware),
``date``, `enum.StrEnum` subclasses, nested frozen dataclasses, ``tuple[T, ...]`` and
``T | None``. Saga and service code only ever sees the typed classes.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from sagas.contracts.errors import EncodeError, InvalidFieldError, SchemaError

T = TypeVar("T")


class _Bad(Exception):
    """Internal: a value does not fit; carries the field path."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


# A converter maps a value to the other representation, or raises _Bad.
Convert = Callable[[Any, str], Any]


@dataclasses.dataclass(frozen=True)
class _Pair:
    to_avro: Convert
    from_avro: Convert


def to_avro(record: object) -> dict[str, Any]:
    """The fastavro datum (plain dict) of a typed record.

    Raises:
        EncodeError: a value does not fit its field's type (names the field).
    """
    try:
        result: dict[str, Any] = _pair(type(record)).to_avro(record, type(record).__name__)
    except _Bad as exc:
        raise EncodeError(f"{exc.path}: {exc.problem}", reason="invalid-field") from None
    return result


def from_avro(cls: type[T], datum: Any) -> T:
    """Build a typed record of class ``cls`` from a fastavro datum.

    Raises:
        InvalidFieldError: a value does not fit its field's type (names the field).
    """
    try:
        result: T = _pair(cls).from_avro(datum, cls.__name__)
    except _Bad as exc:
        raise InvalidFieldError(f"{exc.path}: {exc.problem}") from None
    return result


def check_convertible(cls: type[object]) -> None:
    """Compile the converters of ``cls`` now; `SchemaError` if a field type is unsupported."""
    try:
        _pair(cls)
    except (TypeError, NameError) as exc:
        raise SchemaError(f"{cls.__qualname__}: {exc}") from exc


def _pair(hint: Any) -> _Pair:
    return _compile(hint)


@functools.cache
def _compile(hint: Any) -> _Pair:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _optional(hint, args)
    if origin is tuple:
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"only tuple[T, ...] is supported, not {hint}")
        return _array(_pair(args[0]))
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record(hint)
    if hint in _LEAVES:
        check = _LEAVES[hint]
        return _Pair(check, check)
    raise TypeError(f"unsupported field type {hint!r}")


def _optional(hint: Any, args: tuple[Any, ...]) -> _Pair:
    others = [arg for arg in args if arg is not type(None)]
    if len(others) != 1 or len(args) != 2:
        raise TypeError(f"only `T | None` unions are supported, not {hint}")
    inner = _pair(others[0])

    def to(value: Any, path: str) -> Any:
        return None if value is None else inner.to_avro(value, path)

    def back(value: Any, path: str) -> Any:
        return None if value is None else inner.from_avro(value, path)

    return _Pair(to, back)


def _array(item: _Pair) -> _Pair:
    def to(value: Any, path: str) -> Any:
        if not isinstance(value, tuple):
            raise _Bad(path, f"expected a tuple, got {type(value).__name__}")
        return [item.to_avro(v, f"{path}[{i}]") for i, v in enumerate(value)]

    def back(value: Any, path: str) -> Any:
        if not isinstance(value, list | tuple):
            raise _Bad(path, f"expected an array, got {type(value).__name__}")
        return tuple(item.from_avro(v, f"{path}[{i}]") for i, v in enumerate(value))

    return _Pair(to, back)


def _enum(cls: type[enum.Enum]) -> _Pair:
    def to(value: Any, path: str) -> Any:
        if not isinstance(value, cls):
            raise _Bad(path, f"expected {cls.__name__}, got {value!r}")
        return value.value

    def back(value: Any, path: str) -> Any:
        try:
            return cls(value)
        except ValueError:
            raise _Bad(path, f"{value!r} is not a {cls.__name__}") from None

    return _Pair(to, back)


def _record(cls: type[Any]) -> _Pair:
    hints = typing.get_type_hints(cls)
    fields = [(f.name, _pair(hints[f.name])) for f in dataclasses.fields(cls)]

    def to(value: Any, path: str) -> Any:
        if type(value) is not cls:
            raise _Bad(path, f"expected {cls.__name__}, got {type(value).__name__}")
        return {name: pair.to_avro(getattr(value, name), f"{path}.{name}") for name, pair in fields}

    def back(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise _Bad(path, f"expected a record, got {type(value).__name__}")
        kwargs: dict[str, Any] = {}
        for name, pair in fields:
            if name not in value:
                raise _Bad(f"{path}.{name}", "missing")
            kwargs[name] = pair.from_avro(value[name], f"{path}.{name}")
        try:
            return cls(**kwargs)
        except (TypeError, ValueError) as exc:  # a class may validate in __post_init__
            raise _Bad(path, str(exc)) from None

    return _Pair(to, back)


def _leaf(expected: str, accept: Callable[[Any], bool]) -> Convert:
    def check(value: Any, path: str) -> Any:
        if not accept(value):
            raise _Bad(path, f"expected {expected}, got {type(value).__name__} {value!r:.40}")
        return value

    return check


def _aware(value: Any) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


_LEAVES: dict[Any, Convert] = {
    str: _leaf("str", lambda v: isinstance(v, str)),
    bytes: _leaf("bytes", lambda v: isinstance(v, bytes)),
    bool: _leaf("bool", lambda v: isinstance(v, bool)),
    int: _leaf("int", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    float: _leaf("float", lambda v: isinstance(v, float)),
    Decimal: _leaf("a finite Decimal", lambda v: isinstance(v, Decimal) and v.is_finite()),
    datetime: _leaf("an aware datetime", _aware),
    date: _leaf("date", lambda v: isinstance(v, date) and not isinstance(v, datetime)),
}
