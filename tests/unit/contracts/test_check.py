"""`sagas check` on the repository and on deliberately broken copies of it."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest

from sagas.contracts.agreement import disagreements
from sagas.contracts.avro_types import normalize
from sagas.contracts.check import Problem, run_check
from sagas.contracts.classmap import ClassMap
from sagas.contracts.codegen import generate
from sagas.contracts.codegen.files import apply, changes
from sagas.contracts.compat import Mode
from sagas.contracts.record import Record
from sagas.contracts.schemas import SchemaTree, load_tree
from sagas.contracts.usages import Usage
from sagas.ops.cli import main
from services.app import SCHEMAS
from services.app import app as examples

ALL_MESSAGES = tuple(cls for _, cls in examples.classes.items())
OWN = ClassMap(examples.message_classes)
"""The example app's own classes: what `sagas check` checks against its schemas."""

Edit = Callable[[dict[str, Any]], None]


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, root)
    return root


def edit(root: Path, name: str, change: Edit) -> None:
    kind = next(
        k for k in ("events", "commands", "replies") if (root / k / f"{name}.avsc").exists()
    )
    path = root / kind / f"{name}.avsc"
    schema = json.loads(path.read_text())
    change(schema)
    path.write_text(json.dumps(schema, indent=2))


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f["name"] == name)


def cli(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *args: str,
    schemas: Path | None = None,
    messages: Path | None = None,
) -> tuple[int, str]:
    """`sagas check ARGS` on the example app, or on a copy of it whose schemas are
    ``schemas`` and whose generated package is ``messages`` (none: the example classes,
    so no generated package is compared)."""
    monkeypatch.setenv("COLUMNS", "250")
    app: list[str] = []
    if schemas is not None:
        folder = schemas.parent
        module = f"check_app_{uuid.uuid4().hex[:8]}"
        classes = (
            f"importlib.import_module({messages.name!r})"
            if messages is not None
            else "examples.message_classes"
        )
        (folder / f"{module}.py").write_text(
            "import dataclasses, importlib\nfrom pathlib import Path\n"
            "from services.app import app as examples\n"
            f"app = dataclasses.replace(examples, schemas=Path({str(schemas)!r}), "
            f"messages={classes})\n"
        )
        monkeypatch.syspath_prepend(str(folder))
        app = ["--app", f"{module}:app"]
    code = main(["check", *app, *args])
    return code, capsys.readouterr().out


def compat(root: Path, mode: Mode = Mode.BACKWARD) -> list[Problem]:
    report, _ = run_check(root, OWN, mode)
    return [p for p in report.problems if p.check == "compatibility"]


def test_repository_passes(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = cli(capsys, monkeypatch)
    assert code == 0, out
    assert "OK" in out
    assert "50 schemas, 50 message classes, 51 released versions" in out
    assert "99 usages, 11 generated files" in out  # the app's generated package is compared


def test_every_class_agrees_with_its_schema(tree: SchemaTree) -> None:
    for cls in ALL_MESSAGES:
        assert disagreements(cls, normalize(tree.current[cls.SCHEMA].raw)) == [], cls.SCHEMA


def test_disagreement_names_the_field(tree: SchemaTree) -> None:
    @dataclass(frozen=True, kw_only=True)
    class OrderCancelled(Record):
        SCHEMA: ClassVar[str] = "orders.OrderCancelled"
        order_id: int
        reason: str | None = None
        extra: str

    found: dict[str, str] = {}
    for path, message in disagreements(
        OrderCancelled, normalize(tree.current["orders.OrderCancelled"].raw)
    ):
        found[path] = found.get(path, "") + message + "; "
    assert "class says int" in found["order_id"]
    assert "optional" in found["reason"]
    assert "not in the schema" in found["extra"]
    assert "missing from OrderCancelled" in found["cancelled_at"]


def test_added_field_without_default_fails_backward(
    copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(
        copy,
        "orders.OrderCancelled",
        lambda s: s["fields"].append({"name": "refund_id", "type": "string", "doc": "The refund."}),
    )
    code, out = cli(capsys, monkeypatch, schemas=copy)
    assert code == 1
    assert "orders.OrderCancelled" in out
    assert "refund_id" in out
    assert "field 'refund_id' has no default" in out
    with_default = [p for p in compat(copy, Mode.FORWARD)]
    assert with_default == []  # old readers just skip a new field


def test_added_field_with_default_passes(copy: Path) -> None:
    edit(
        copy,
        "orders.OrderCancelled",
        lambda s: s["fields"].append(
            {"name": "note", "type": ["null", "string"], "default": None, "doc": "A note."}
        ),
    )
    assert compat(copy, Mode.FULL) == []


def test_incompatible_type_change_fails(
    copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(copy, "inventory.StockUnavailable", lambda s: field(s, "sku").update(type="int"))
    code, out = cli(capsys, monkeypatch, schemas=copy)
    assert code == 1
    [problem] = compat(copy)
    assert (problem.schema, problem.field) == ("inventory.StockUnavailable", "sku")
    assert "string cannot be read as int" in problem.message
    assert "inventory.StockUnavailable" in out
    assert "sku" in out


def test_promotion_is_compatible(copy: Path) -> None:
    edit(copy, "inventory.StockUnavailable", lambda s: field(s, "requested").update(type="long"))
    assert compat(copy) == []
    assert [p.field for p in compat(copy, Mode.FORWARD)] == ["requested"]


def test_removed_enum_symbol_fails_backward(
    copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def drop(schema: dict[str, Any]) -> None:
        field(schema, "reason")["type"]["symbols"].remove("FRAUD_SUSPECTED")

    edit(copy, "payments.PaymentDeclined", drop)
    code, out = cli(capsys, monkeypatch, schemas=copy)
    assert code == 1
    [problem] = compat(copy)
    assert (problem.schema, problem.field) == ("payments.PaymentDeclined", "reason")
    assert "FRAUD_SUSPECTED" in problem.message
    assert "FRAUD_SUSPECTED" in out


def test_enum_default_allows_removing_a_symbol(copy: Path) -> None:
    def drop(schema: dict[str, Any]) -> None:
        enum = field(schema, "reason")["type"]
        enum["symbols"].remove("FRAUD_SUSPECTED")
        enum["default"] = "UNKNOWN_ACCOUNT"

    edit(copy, "payments.PaymentDeclined", drop)
    assert compat(copy) == []


def test_removed_field_without_default_fails_forward_only(copy: Path) -> None:
    edit(copy, "orders.OrderCancelled", lambda s: s["fields"].pop(1))
    assert compat(copy) == []
    [problem] = compat(copy, Mode.FORWARD)
    assert problem.field == "reason"
    assert "readers on v1" in problem.message
    assert len(compat(copy, Mode.FULL)) == 1


def test_usages_naming_missing_fields_or_types_fail(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    usages = tmp_path / "usages.json"
    usages.write_text(
        json.dumps(
            [
                {
                    "type": "orders.OrderPlaced",
                    "fields": ["items.sku", "shipping_address.zip"],
                    "where": "order_fulfilment start",
                },
                {"type": "inventory.StockReserved", "fields": ["reservation_id"]},
                {"type": "inventory.StockReservd", "fields": ["reservation_id"]},
            ]
        )
    )
    code, out = cli(capsys, monkeypatch, "--usages", str(usages), schemas=copy)
    assert code == 1
    report, _ = run_check(
        copy,
        OWN,
        usages=[
            Usage("orders.OrderPlaced", ("items.sku", "shipping_address.zip"), "definition"),
            Usage("inventory.StockReservd"),
        ],
    )
    found = {(p.schema, p.field) for p in report.problems}
    assert found == {
        ("orders.OrderPlaced", "shipping_address.zip"),
        ("inventory.StockReservd", None),
    }
    assert "no field 'zip' in shipping_address" in out
    assert "no schema named inventory.StockReservd" in out


def test_unparsable_schema_and_missing_doc_are_reported(copy: Path) -> None:
    (copy / "events" / "orders.Broken.avsc").write_text('{"type": "record", "name": ')
    edit(copy, "orders.OrderCancelled", lambda s: field(s, "reason").pop("doc"))
    report, _ = run_check(copy, OWN)
    checks = {(p.check, p.field) for p in report.problems}
    assert ("docs", "reason") in checks
    assert any(p.check == "schema" and "orders.Broken.avsc" in p.message for p in report.problems)


def test_release_records_changed_schemas(
    copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(copy, "orders.OrderCancelled", lambda s: s.update(doc="Changed doc."))
    code, out = cli(capsys, monkeypatch, "--release", schemas=copy)
    assert code == 0, out
    assert (copy / "history" / "orders.OrderCancelled" / "v2.avsc").exists()
    code, out = cli(capsys, monkeypatch, "--release", schemas=copy)
    assert "nothing to release" in out


def test_generated_modules_that_disagree_with_the_schemas_fail(
    copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "messages"
    sources = generate(load_tree(copy))
    apply(sources, changes(out, sources))
    code, text = cli(capsys, monkeypatch, schemas=copy, messages=out)
    assert code == 0, text
    assert "11 generated files" in text

    orders = out / "orders.py"
    orders.write_text(orders.read_text().replace("reason: str", "reason: str | None = None"))
    edit(copy, "shipping.ShipmentFailed", lambda s: s.update(doc="Changed doc."))
    report, _ = run_check(copy, OWN, generated=out)
    assert {(p.check, p.schema) for p in report.problems} == {
        ("generated", str(orders)),
        ("generated", str(out / "shipping.py")),
    }
    code, text = cli(capsys, monkeypatch, schemas=copy, messages=out)
    assert code == 1
    assert "run `sagas codegen`" in text


def test_a_schema_codegen_refuses_is_reported(copy: Path, tmp_path: Path) -> None:
    edit(copy, "orders.OrderCancelled", lambda s: field(s, "reason").update(name="class"))
    report, _ = run_check(copy, OWN, generated=tmp_path)
    [problem] = [p for p in report.problems if p.check == "generated"]
    assert "cannot generate the classes: orders.OrderCancelled: field 'class'" in problem.message


def test_an_app_whose_messages_are_not_a_generated_package_is_not_compared(
    copy: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    edit(copy, "orders.OrderCancelled", lambda s: s.update(doc="Changed doc."))
    code, out = cli(capsys, monkeypatch, schemas=copy)
    assert code == 0, out
    assert "generated files" not in out
