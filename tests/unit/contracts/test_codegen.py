"""`sagas.contracts.codegen`: message classes generated from small schema trees."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from sagas.contracts import framework
from sagas.contracts.agreement import disagreements
from sagas.contracts.avro_types import normalize
from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.codegen import HEADER, generate
from sagas.contracts.codegen.files import changes
from sagas.contracts.errors import SchemaError
from sagas.contracts.record import Envelope, Record
from sagas.contracts.registry import EmbeddedRegistry
from sagas.contracts.schemas import SchemaTree, load_tree
from services.app import SCHEMAS
from tests.unit.contracts.codegen_support import (
    field,
    imported,
    record,
    tree_of,
    write,
    write_package,
)
from tests.unit.contracts.strategies import instances

COLOUR = {
    "type": "enum",
    "name": "Colour",
    "namespace": "shop",
    "doc": "A colour.",
    "symbols": ["RED", "GREEN"],
}
DECIMAL = {"type": "bytes", "logicalType": "decimal", "precision": 6, "scale": 2}
DATE = {"type": "int", "logicalType": "date"}
MILLIS = {"type": "long", "logicalType": "timestamp-millis"}
MICROS = {"type": "long", "logicalType": "timestamp-micros"}
MONEY = {
    "type": "fixed",
    "name": "Money",
    "size": 8,
    "logicalType": "decimal",
    "precision": 10,
    "scale": 2,
}

EVERYTHING = record(
    "shop.Everything",
    field("text", "string"),
    field("blob", "bytes"),
    field("small", "int"),
    field("big", "long"),
    field("ratio", "float"),
    field("precise", "double"),
    field("flag", "boolean"),
    field("price", DECIMAL),
    field("fixed_price", MONEY),
    field("digest", {"type": "fixed", "name": "Digest", "size": 4}),
    field("at", MILLIS),
    field("at_micros", MICROS),
    field("day", DATE),
    field("colour", COLOUR),
    field("address", record("shop.Address", field("street", "string"), doc="Where.")),
    field(
        "lines",
        {"type": "array", "items": record("shop.Line", field("sku", "string"))},
    ),
    field("tags", {"type": "array", "items": "string"}),
    field("note", ["null", "string"], default=None),
    field("nickname", ["string", "null"], default="none"),
    field("maybe_day", ["null", DATE]),
    field("colours", {"type": "array", "items": "Colour"}),
    field("matrix", {"type": "array", "items": {"type": "array", "items": "int"}}),
    doc="Every construct.",
)
DEFAULTS = record(
    "shop.Defaults",
    field("when", ["null", "string"], default=None),
    field("name", "string", default='say "hi"'),
    field("count", "int", default=3),
    field("ratio", "double", default=1),
    field("on", "boolean", default=True),
    field("colour", COLOUR, default="GREEN"),
    field("tags", {"type": "array", "items": "string"}, default=[]),
    field("pair", {"type": "array", "items": "string"}, default=["a", "b"]),
    field("price", DECIMAL, default="\u0004\u00d2"),
    field("day", DATE, default=19844),
    field("at", MILLIS, default=1714564800000),
    field("blob", "bytes", default="\u0000\u00ff"),
    field(
        "words",
        {"type": "array", "items": "string"},
        default=[f"a-fairly-long-word-number-{i}" for i in range(4)],
    ),
    field("a_rather_long_field_name_for_a_timestamp_default", MICROS, default=1714564800000001),
)
DOCUMENTED = record(
    "shop.Documented",
    field(
        "path",
        "string",
        doc='Paths like C:\\temp, "quotes" and """triple""" quotes, and a field doc long '
        "enough that it has to be wrapped onto a second line.",
    ),
    field("plain", "string", doc=None),
    doc="A record whose doc is long enough to be wrapped: it goes on and on, past the "
    'hundred characters of a line.\n\nA second paragraph, "quoted".',
)


@pytest.fixture
def shop(tmp_path: Path) -> SchemaTree:
    return tree_of(tmp_path / "schemas", EVERYTHING, DEFAULTS, DOCUMENTED)


def lines_of(source: str) -> list[str]:
    return source.splitlines()


def test_each_avro_construct_becomes_its_python_type(shop: SchemaTree) -> None:
    source = generate(shop)["shop.py"]
    body = source[source.index("class Everything(Record):") :]
    fields = [
        line.strip() for line in body.splitlines() if line.startswith("    ") and ": " in line
    ]
    assert [f for f in fields if not f.endswith("A field.")] == [
        'SCHEMA: ClassVar[str] = "shop.Everything"',
        "text: str",
        "blob: bytes",
        "small: int",
        "big: int",
        "ratio: float",
        "precise: float",
        "flag: bool",
        "price: Decimal",
        "fixed_price: Decimal",
        "digest: bytes",
        "at: datetime",
        "at_micros: datetime",
        "day: date",
        "colour: Colour",
        "address: Address",
        "lines: tuple[Line, ...]",
        "tags: tuple[str, ...]",
        "note: str | None = None",
        'nickname: str | None = "none"',
        "maybe_day: date | None",
        "colours: tuple[Colour, ...]",
        "matrix: tuple[tuple[int, ...], ...]",
    ]
    assert "class Colour(StrEnum):" in source
    assert '    RED = "RED"\n    GREEN = "GREEN"\n' in source
    assert "@dataclass(frozen=True, kw_only=True)\nclass Address:\n" in source
    assert "class Line:\n" in source
    assert "MESSAGES: tuple[type[Record], ...] = (\n    Defaults,\n    Documented,\n" in source


def test_defaults_are_python_literals(shop: SchemaTree, tmp_path: Path) -> None:
    source = generate(shop)["shop.py"]
    for line in [
        "    when: str | None = None",
        "    name: str = 'say \"hi\"'",
        "    count: int = 3",
        "    ratio: float = 1.0",
        "    on: bool = True",
        "    colour: Colour = Colour.GREEN",
        "    tags: tuple[str, ...] = ()",
        '    pair: tuple[str, ...] = ("a", "b")',
        '    price: Decimal = Decimal("12.34")',
        "    day: date = date(2024, 5, 1)",
        "    at: datetime = datetime(2024, 5, 1, 12, tzinfo=UTC)",
        '    blob: bytes = b"\\x00\\xff"',
        "    words: tuple[str, ...] = (",
        '        "a-fairly-long-word-number-0",',
        "    a_rather_long_field_name_for_a_timestamp_default: datetime = datetime(",
        "        2024, 5, 1, 12, 0, 0, 1, tzinfo=UTC",
    ]:
        assert line in lines_of(source)
    with imported(tmp_path, generate(shop), "gen_defaults") as package:
        made = package.shop.Defaults()
    assert made.colour == "GREEN"
    assert made.price == Decimal("12.34")
    assert made.at == datetime(2024, 5, 1, 12, tzinfo=UTC)
    assert made.day == date(2024, 5, 1)
    assert made.a_rather_long_field_name_for_a_timestamp_default.microsecond == 1


def test_docs_become_google_style_docstrings(shop: SchemaTree, tmp_path: Path) -> None:
    source = generate(shop)["shop.py"]
    assert '    """Where.\n\n    Attributes:\n        street: A field.\n    """' in source
    with imported(tmp_path, generate(shop), "gen_docs") as package:
        documented = inspect.getdoc(package.shop.Documented) or ""
        colour = inspect.getdoc(package.shop.Colour)
    assert documented.startswith(
        "A record whose doc is long enough to be wrapped: it goes on and on, past the hundred\n"
        'characters of a line.\n\nA second paragraph, "quoted".\n\nAttributes:\n'
    )
    assert (
        '    path: Paths like C:\\temp, "quotes" and """triple""" quotes, and a field doc long\n'
        "        enough that it has to be wrapped onto a second line."
    ) in documented
    assert "plain" not in documented  # no doc, no line
    assert colour == "A colour."
    assert all(len(line) <= 100 for line in source.splitlines())


def test_the_header_names_the_schema_files(shop: SchemaTree) -> None:
    sources = generate(shop)
    assert lines_of(sources["shop.py"])[:5] == [
        f"{HEADER}: do not edit. Change the schemas and run `sagas codegen`.",
        "# Schemas (under the schemas folder):",
        "#   events/shop.Defaults.avsc",
        "#   events/shop.Documented.avsc",
        "#   events/shop.Everything.avsc",
    ]
    assert sources["__init__.py"].startswith(HEADER)
    assert '"""Messages of the ``shop`` namespace: 3 events."""' in sources["shop.py"]


def test_generated_code_is_ruff_clean_and_imports(shop: SchemaTree, tmp_path: Path) -> None:
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this Python")
    package = write_package(tmp_path / "gen_ruff", generate(shop))
    config = Path(__file__).resolve().parents[3] / "pyproject.toml"
    for command in (["format", "--check", "--diff"], ["check"]):
        done = subprocess.run(
            [str(ruff), *command, "--config", str(config), str(package)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_generated_classes_agree_and_round_trip(shop: SchemaTree, tmp_path: Path) -> None:
    with imported(tmp_path, generate(shop), "gen_round_trip") as package:
        classes: tuple[type[Record], ...] = package.ALL_MESSAGES
        codec = Codec(EmbeddedRegistry.from_tree(shop), shop.current, ClassMap(classes))
        for cls in classes:
            node = normalize(shop.current[cls.SCHEMA].raw)
            assert disagreements(cls, node) == [], cls.SCHEMA

            @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
            @given(instances(cls, node))
            def round_trip(payload: Record) -> None:
                sent = Envelope(
                    id="m",
                    type=payload.SCHEMA,
                    source="/t",
                    time=datetime.now(UTC),
                    payload=payload,
                )
                assert codec.decode(*codec.encode(sent)) == sent

            round_trip()


def test_types_of_other_namespaces_are_imported(tmp_path: Path) -> None:
    role = {"type": "enum", "name": "Role", "namespace": "hr", "doc": "A role.", "symbols": ["A"]}
    tree = tree_of(
        tmp_path / "schemas",
        record("hr.Hired", field("role", role)),
        record(
            "licensing.Assign",
            field("role", role),
            field("roles", ["null", "hr.Role"], default=None),
        ),
        record(
            "access.Grant",
            field("role", role),
            field("own", {"type": "enum", "name": "Role", "doc": "Local.", "symbols": ["B"]}),
        ),
    )
    sources = generate(tree)
    assert "from .hr import Role\n" in sources["licensing.py"]
    assert "    role: Role\n    roles: Role | None = None\n" in sources["licensing.py"]
    # access has a Role of its own: the other one is written with its module's name
    assert "from . import hr\n" in sources["access.py"]
    assert "    role: hr.Role\n    own: Role\n" in sources["access.py"]
    assert "class Role(StrEnum):" not in sources["licensing.py"]
    assert "#   events/licensing.Assign.avsc" in sources["hr.py"]  # Role is defined there too
    assert sorted(sources) == ["__init__.py", "access.py", "hr.py", "licensing.py"]
    with imported(tmp_path, sources, "gen_imports") as package:
        assert package.licensing.Assign.__dataclass_fields__["role"].type == "Role"
        assert [cls.SCHEMA for cls in package.ALL_MESSAGES] == [
            "access.Grant",
            "hr.Hired",
            "licensing.Assign",
        ]


def test_the_same_name_in_two_namespaces_is_two_classes(tmp_path: Path) -> None:
    street = field("street", "string")
    tree = tree_of(
        tmp_path / "schemas",
        record("orders.Placed", field("to", record("orders.Address", street))),
        record("shipping.Schedule", field("to", record("shipping.Address", street))),
    )
    sources = generate(tree)
    assert "class Address:" in sources["orders.py"]
    assert "class Address:" in sources["shipping.py"]
    assert "import" not in sources["orders.py"].split("from sagas.contracts.record import")[1]


def test_a_named_type_must_be_defined_the_same_way_everywhere(tmp_path: Path) -> None:
    role = {"type": "enum", "name": "Role", "namespace": "hr", "doc": "A role.", "symbols": ["A"]}
    other = {**role, "symbols": ["A", "B"]}
    tree = tree_of(
        tmp_path / "schemas",
        record("hr.Hired", field("role", role)),
        record("licensing.Assign", field("role", other)),
    )
    with pytest.raises(SchemaError, match=r"licensing.Assign: hr.Role differs from .* hr.Hired"):
        generate(tree)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ([field("class", "string")], r"field 'class' of shop.Bad is a Python keyword"),
        (
            [field("to", record("shop.Inner", field("from", "string")))],
            r"field 'from' of shop.Inner is a Python keyword",
        ),
        ([field("__secret", "string")], r"'__secret' of shop.Bad starts with two underscores"),
        ([field("SCHEMA", "string")], r"'SCHEMA' of shop.Bad is the name of the class's SCHEMA"),
        (
            [field("colour", {"type": "enum", "name": "C", "symbols": ["None"]})],
            r"symbol 'None' of shop.C cannot be an enum member",
        ),
        (
            [field("m", {"type": "map", "values": "int"})],
            r"field 'm' of shop.Bad: map<int> is not supported",
        ),
        ([field("u", ["null", "int", "string"])], r"field 'u' of shop.Bad: union\[null, int"),
        (
            [field("id", {"type": "string", "logicalType": "uuid"})],
            r"field 'id' of shop.Bad: logicalType 'uuid' on string is not supported",
        ),
        (
            [field("to", record("shop.Inner", field("a", "string")), default={"a": "x"})],
            r"field 'to' of shop.Bad: a default for record shop.Inner is not supported",
        ),
        (
            [field("date", DATE), field("end", DATE)],
            r"field 'end' of shop.Bad refers to 'date', which an earlier field",
        ),
        ([field("next", ["null", "Bad"])], r"record shop.Bad contains itself"),
    ],
)
def test_what_a_class_cannot_hold_is_refused_naming_schema_and_field(
    tmp_path: Path, fields: list[dict[str, Any]], problem: str
) -> None:
    tree = tree_of(tmp_path / "schemas", record("shop.Bad", *fields))
    with pytest.raises(SchemaError, match=r"\] shop.Bad: .*" + problem):
        generate(tree)


@pytest.mark.parametrize(
    ("full", "problem"),
    [
        ("Bare", "has namespace '', which is not a Python module name"),
        ("com.acme.Thing", "has namespace 'com.acme', which is not a Python module name"),
        ("import.Thing", "has namespace 'import'"),
        ("shop.Record", "shop.Record cannot be a Python class name"),
    ],
)
def test_names_python_cannot_use_are_refused(tmp_path: Path, full: str, problem: str) -> None:
    tree = tree_of(tmp_path / "schemas", record(full, field("a", "string")))
    with pytest.raises(SchemaError, match=problem):
        generate(tree)


def test_a_tree_that_did_not_load_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "schemas"
    write(root, record("shop.Good", field("a", "string")))
    (root / "events" / "shop.Broken.avsc").write_text("{", encoding="utf-8")
    with pytest.raises(SchemaError, match=r"shop\.Broken\.avsc"):
        generate(load_tree(root))


def test_generation_is_deterministic(shop: SchemaTree, tmp_path: Path) -> None:
    first = generate(shop)
    assert generate(shop) == first
    reversed_tree = SchemaTree(
        root=shop.root,
        current=dict(reversed(list(shop.current.items()))),
        kinds=dict(reversed(list(shop.kinds.items()))),
    )
    assert generate(reversed_tree) == first
    elsewhere = tmp_path / "elsewhere" / "schemas"
    shutil.copytree(shop.root, elsewhere)
    assert generate(load_tree(elsewhere)) == first


def test_the_repositorys_generated_modules_are_up_to_date() -> None:
    assert changes(framework.messages_dir(), generate(framework.schema_tree())) == []
    examples_dir = SCHEMAS.parent / "services" / "messages"
    assert changes(examples_dir, generate(load_tree(SCHEMAS))) == []
