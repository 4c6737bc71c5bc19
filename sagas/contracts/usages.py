"""The extension point through which code that reads messages is checked against schemas.

A saga definition or a participant handler declares what it reads as `Usage`\\ s: a
message type and the field paths it reads. `sagas check` verifies that each type has a
schema and that each path exists in it, so renaming a field cannot silently break a
definition. The saga engine turns its definitions into usages (a function returning
``Iterable[Usage]``) and passes them to `sagas.contracts.check.run_check`.

Paths are dotted field names; arrays and optional values are stepped through, so
``"items.sku"`` names the ``sku`` of each line of ``orders.OrderPlaced``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sagas.contracts.avro_types import Node, normalize
from sagas.contracts.errors import SchemaError
from sagas.contracts.schemas import SchemaFile


@dataclass(frozen=True)
class Usage:
    """Something reads fields of a message type.

    Attributes:
        type: Avro full name of the message, e.g. ``"inventory.StockReserved"``.
        fields: dotted field paths it reads, e.g. ``("reservation_id",)``.
        where: who reads it, for the report, e.g. ``"order_fulfilment step reserve"``.
    """

    type: str
    fields: tuple[str, ...] = ()
    where: str = ""


@dataclass(frozen=True)
class UsageProblem:
    """A usage names a type or field the schemas do not have."""

    usage: Usage
    field: str | None
    message: str


def check_usages(usages: Iterable[Usage], schemas: Mapping[str, SchemaFile]) -> list[UsageProblem]:
    """Every usage whose type has no schema or whose field paths do not exist."""
    problems: list[UsageProblem] = []
    nodes: dict[str, Node] = {}
    for usage in usages:
        schema = schemas.get(usage.type)
        if schema is None:
            problems.append(UsageProblem(usage, None, f"no schema named {usage.type}"))
            continue
        node = nodes.setdefault(usage.type, normalize(schema.raw))
        for path in usage.fields:
            missing = _missing_segment(node, path)
            if missing is not None:
                problems.append(UsageProblem(usage, path, missing))
    return problems


def _missing_segment(node: Node, path: str) -> str | None:
    current = node
    walked: list[str] = []
    for segment in path.split("."):
        current = _unwrap(current)
        field = current.field(segment) if current.kind == "record" else None
        if field is None:
            where = ".".join(walked) or current.name or "the record"
            return f"no field {segment!r} in {where} ({current.describe()})"
        walked.append(segment)
        current = field.type
    return None


def _unwrap(node: Node) -> Node:
    """Step through arrays, maps and ``[null, T]`` unions to the value type."""
    while True:
        if node.kind in ("array", "map") and node.items is not None:
            node = node.items
        elif node.kind == "union":
            others = [b for b in node.branches if b.kind != "null"]
            if len(others) != 1:
                return node
            node = others[0]
        else:
            return node


def load_usages(path: Path) -> list[Usage]:
    """Read usages from a JSON file: ``[{"type": ..., "fields": [...], "where": ...}]``.

    Raises:
        SchemaError: the file is unreadable or not of that shape.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            Usage(
                type=str(item["type"]),
                fields=tuple(item.get("fields", ())),
                where=str(item.get("where", path.name)),
            )
            for item in data
        ]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SchemaError(f"{path}: not a list of usages: {exc}") from exc
