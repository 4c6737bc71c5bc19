"""Avro JSON defaults as Python values, and the agreement check's use of them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import pytest

from sagas.contracts.agreement import disagreements
from sagas.contracts.avro_types import normalize
from sagas.contracts.defaults import python_default
from sagas.contracts.errors import SchemaError

DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}
COLOUR = {"type": "enum", "name": "Colour", "symbols": ["RED", "GREEN"]}


def node(avro: Any) -> Any:
    schema = {"type": "record", "name": "R", "fields": [{"name": "f", "type": avro}]}
    return normalize(schema).fields[0].type


@pytest.mark.parametrize(
    ("avro", "value", "expected"),
    [
        (["null", "string"], None, None),
        (["string", "null"], "x", "x"),
        ("boolean", True, True),
        ("long", 7, 7),
        ("double", 1, 1.0),
        ("string", 'say "hi"', 'say "hi"'),
        ("bytes", "\u0000\u00ff", b"\x00\xff"),
        ({"type": "fixed", "name": "Two", "size": 2}, "ab", b"ab"),
        (COLOUR, "GREEN", "GREEN"),
        ({"type": "array", "items": "int"}, [1, 2], (1, 2)),
        (DECIMAL, "\u0004\u00d2", Decimal("12.34")),
        (DECIMAL, "\u00ff", Decimal("-0.01")),
        ({"type": "int", "logicalType": "date"}, 19844, date(2024, 5, 1)),
        (
            {"type": "long", "logicalType": "timestamp-millis"},
            1714564800123,
            datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC),
        ),
        (
            {"type": "long", "logicalType": "timestamp-micros"},
            1714564800000001,
            datetime(2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC),
        ),
    ],
)
def test_json_defaults_become_python_values(avro: Any, value: Any, expected: Any) -> None:
    found = python_default(value, node(avro))
    assert found == expected
    assert type(found) is type(expected)


@pytest.mark.parametrize(
    ("avro", "value", "problem"),
    [
        ("int", True, "does not fit int"),
        ("double", "1", "does not fit double"),
        (COLOUR, "BLUE", "does not fit enum Colour"),
        ("bytes", "\u0100", "above 255"),
        ({"type": "map", "values": "int"}, {}, "not supported"),
        ({"type": "int", "logicalType": "date"}, 10**12, "out of range"),
        ({"type": "string", "logicalType": "uuid"}, "x", "not supported"),
    ],
)
def test_bad_or_unsupported_defaults_are_schema_errors(avro: Any, value: Any, problem: str) -> None:
    with pytest.raises(SchemaError, match=problem):
        python_default(value, node(avro))


class Colour(StrEnum):
    RED = "RED"
    GREEN = "GREEN"


@dataclass(frozen=True, kw_only=True)
class Defaults:
    amount: Decimal = Decimal("12.34")
    colour: Colour = Colour.GREEN
    note: str | None = "none"
    at: datetime = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    blob: bytes = b"\x00"


def test_agreement_compares_converted_defaults_and_accepts_t_or_null() -> None:
    schema = {
        "type": "record",
        "name": "Defaults",
        "fields": [
            {"name": "amount", "type": DECIMAL, "default": "\u0004\u00d2"},
            {"name": "colour", "type": COLOUR, "default": "GREEN"},
            {"name": "note", "type": ["string", "null"], "default": "none"},
            {
                "name": "at",
                "type": {"type": "long", "logicalType": "timestamp-micros"},
                "default": 1,
            },
            {
                "name": "blob",
                "type": {"type": "fixed", "name": "One", "size": 1},
                "default": "\u0000",
            },
        ],
    }
    assert disagreements(Defaults, normalize(schema)) == []
    schema["fields"][0]["default"] = "\u0004\u00d3"
    [(path, problem)] = disagreements(Defaults, normalize(schema))
    assert path == "amount"
    assert "defaults differ" in problem
