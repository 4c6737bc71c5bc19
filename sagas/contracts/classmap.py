"""Which typed class decodes which Avro full name (``ce_type``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator

from sagas.contracts.convert import check_convertible
from sagas.contracts.errors import SchemaError, UnknownTypeError
from sagas.contracts.record import Record


class ClassMap:
    """An immutable mapping from Avro full name to `Record` subclass.

    Built once and passed to the codec (no global registry). The constructor checks that
    every class is a frozen dataclass with a ``SCHEMA`` and convertible field types.

    Args:
        classes: the message classes, each naming its schema in ``SCHEMA``.

    Raises:
        SchemaError: a class is malformed, or two classes claim the same schema.
    """

    def __init__(self, classes: Iterable[type[Record]]) -> None:
        self._classes: dict[str, type[Record]] = {}
        for cls in classes:
            name = getattr(cls, "SCHEMA", None)
            if not isinstance(name, str) or not name:
                raise SchemaError(f"{cls.__qualname__} has no SCHEMA name")
            if not dataclasses.is_dataclass(cls) or not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]  # set by @dataclass
                raise SchemaError(f"{cls.__qualname__} must be a frozen dataclass")
            if name in self._classes:
                other = self._classes[name].__qualname__
                raise SchemaError(f"{cls.__qualname__} and {other} both claim schema {name}")
            check_convertible(cls)
            self._classes[name] = cls

    def get(self, name: str) -> type[Record]:
        """The class for ``name``; raises `UnknownTypeError`."""
        cls = self._classes.get(name)
        if cls is None:
            raise UnknownTypeError(f"no message class for type {name!r:.80}")
        return cls

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._classes))

    def __len__(self) -> int:
        return len(self._classes)

    def items(self) -> list[tuple[str, type[Record]]]:
        """``(full name, class)`` pairs, sorted by name."""
        return sorted(self._classes.items())
