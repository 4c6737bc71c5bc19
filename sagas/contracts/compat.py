"""Avro schema compatibility, following the schema resolution rules of the Avro spec.

`incompatibilities(reader, writer)` lists why data written with ``writer`` cannot be read
with ``reader``. The modes are built on it, as in Confluent's registry:

- BACKWARD: the new schema reads data written with every released version.
- FORWARD: every released version reads data written with the new schema.
- FULL: both.

Rules (reader vs writer): equal primitives match; the writer's ``int`` promotes to
``long``, ``float``, ``double``, ``long`` to ``float``, ``double``, ``float`` to
``double``; ``string`` and ``bytes`` read each other. Records match by full name (or a
reader alias); each reader field must exist in the writer (by name or alias) or have a
default; writer fields the reader lacks are skipped. Every enum symbol the writer may
send must exist in the reader unless the reader's enum has a default symbol. Arrays and
maps compare their items; fixed types their name and size. Every branch of a writer
union must be readable; a reader union reads a writer type if one branch does. Beyond the
spec, a changed logical type, a changed decimal scale or a smaller decimal precision is
reported: the bytes would still decode, but into wrong values.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sagas.contracts.avro_types import Node, normalize

_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}


class Mode(StrEnum):
    """Which direction of compatibility `sagas check` enforces."""

    BACKWARD = "BACKWARD"
    FORWARD = "FORWARD"
    FULL = "FULL"


@dataclass(frozen=True)
class Incompatibility:
    """One reason a writer's data cannot be read: the field path ('' = the record) and why."""

    path: str
    message: str


def incompatibilities(reader: Any, writer: Any) -> list[Incompatibility]:
    """Why data written with JSON schema ``writer`` cannot be read with ``reader``."""
    checker = _Checker()
    checker.compare(normalize(reader), normalize(writer), "")
    return checker.found


class _Checker:
    def __init__(self) -> None:
        self.found: list[Incompatibility] = []
        self._seen: set[tuple[int, int]] = set()

    def problem(self, path: str, message: str) -> None:
        self.found.append(Incompatibility(path, message))

    def compare(self, reader: Node, writer: Node, path: str) -> None:
        if writer.kind == "union":
            for branch in writer.branches:
                self.compare(reader, branch, path)
            return
        if reader.kind == "union":
            match = next((b for b in reader.branches if _matches(b, writer)), None)
            if match is None:
                self.problem(path, f"{writer.describe()} is not in {reader.describe()}")
            else:
                self.compare(match, writer, path)
            return
        if not _matches(reader, writer):
            self.problem(
                path, f"type changed: {writer.describe()} cannot be read as {reader.describe()}"
            )
            return
        key = (id(reader), id(writer))
        if key in self._seen:  # recursive named types: compared once
            return
        self._seen.add(key)
        if reader.kind == "record":
            self._records(reader, writer, path)
        elif reader.kind == "enum":
            self._enums(reader, writer, path)
        elif reader.kind in ("array", "map"):
            if reader.items is not None and writer.items is not None:
                self.compare(reader.items, writer.items, path)
        elif reader.kind == "fixed" and reader.size != writer.size:
            self.problem(path, f"fixed {reader.name} size changed {writer.size} -> {reader.size}")
        else:
            self._logical(reader, writer, path)

    def _records(self, reader: Node, writer: Node, path: str) -> None:
        for field in reader.fields:
            names = (field.name, *field.aliases)
            source = next((f for f in writer.fields if f.name in names), None)
            where = f"{path}.{field.name}" if path else field.name
            if source is not None:
                self.compare(field.type, source.type, where)
            elif not field.has_default:
                self.problem(
                    where,
                    f"field {where!r} has no default and the writer's {reader.name} lacks it",
                )

    def _enums(self, reader: Node, writer: Node, path: str) -> None:
        unknown = [s for s in writer.symbols if s not in reader.symbols]
        if unknown and not reader.has_default_symbol():
            self.problem(
                path,
                f"enum {reader.name} cannot read symbol(s) {', '.join(unknown)} "
                "(removed, and the enum has no default symbol)",
            )

    def _logical(self, reader: Node, writer: Node, path: str) -> None:
        if reader.logical != writer.logical:
            self.problem(path, f"logical type changed: {writer.describe()} -> {reader.describe()}")
        elif reader.logical == "decimal":
            if reader.scale != writer.scale:
                self.problem(path, f"decimal scale changed {writer.scale} -> {reader.scale}")
            elif (reader.precision or 0) < (writer.precision or 0):
                self.problem(
                    path, f"decimal precision shrank {writer.precision} -> {reader.precision}"
                )


def _matches(reader: Node, writer: Node) -> bool:
    """Whether the reader type can be resolved against the writer type at all."""
    if reader.kind in ("record", "enum", "fixed"):
        return writer.kind == reader.kind and (
            writer.name == reader.name or writer.name in reader.aliases
        )
    if reader.kind in ("array", "map"):
        return writer.kind == reader.kind
    return reader.kind == writer.kind or reader.kind in _PROMOTIONS.get(writer.kind, set())


def check_mode(current: Any, released: Any, mode: Mode) -> list[tuple[str, Incompatibility]]:
    """Problems between the current schema and one released version, under ``mode``.

    Returns ``(direction, problem)`` pairs; direction is ``"backward"`` (the current
    schema cannot read the old data) or ``"forward"`` (old readers cannot read new data).
    """
    found: list[tuple[str, Incompatibility]] = []
    if mode in (Mode.BACKWARD, Mode.FULL):
        found += [("backward", p) for p in incompatibilities(current, released)]
    if mode in (Mode.FORWARD, Mode.FULL):
        found += [("forward", p) for p in incompatibilities(released, current)]
    return found
