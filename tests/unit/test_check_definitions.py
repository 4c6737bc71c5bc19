"""`sagas check` covers an app's saga definitions and participant handlers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sagas.app import saga_usages
from sagas.contracts import framework
from sagas.contracts.check import run_check
from sagas.contracts.classmap import ClassMap
from sagas.contracts.compat import Mode
from sagas.ops.cli import main
from services.app import SCHEMAS
from services.app import app as examples


def test_usages_cover_every_definition_and_service() -> None:
    wheres = {u.where for u in examples.usages()}
    for saga in examples.sagas:
        assert any(w.startswith(f"saga {saga.name}") for w in wheres)
    for participant in examples.participants:
        assert any(w.startswith(f"service {participant.name}") for w in wheres)


def test_saga_usages_carry_the_fields_read() -> None:
    saga = examples.latest["order_fulfilment"]
    by_type = {u.type: u for u in saga_usages(saga)}
    assert by_type["inventory.StockReserved"].fields == ("reservation_id",)
    assert "order_id" in by_type["orders.OrderPlaced"].fields
    assert by_type["payments.CapturePayment"].where == "saga order_fulfilment (sends)"


def _check(root: Path) -> list[tuple[str, str, str | None]]:
    report, _ = run_check(
        root,
        ClassMap(examples.message_classes),
        Mode.BACKWARD,
        examples.usages(),
        known=framework.schema_tree().current,
    )
    return [(p.check, p.schema, p.field) for p in report.problems]


def test_the_example_app_passes() -> None:
    assert _check(SCHEMAS) == []
    assert main(["check"]) == 0


def _without_field(root: Path, relative: str, field: str) -> None:
    path = root / relative
    schema = json.loads(path.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != field]
    path.write_text(json.dumps(schema, indent=2))


def test_a_field_the_saga_reads_removed_from_its_schema_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(SCHEMAS, root)
    _without_field(root, "replies/inventory.StockReserved.avsc", "reservation_id")

    assert ("usage", "inventory.StockReserved", "reservation_id") in _check(root)

    # The same through the command, on an app whose schemas are that copy.
    (tmp_path / "broken_app.py").write_text(
        "import dataclasses\nfrom pathlib import Path\nfrom services.app import app as examples\n"
        f"app = dataclasses.replace(examples, schemas=Path({str(root)!r}))\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["check", "--app", "broken_app:app"]) == 1
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "usage" in line]
    assert any("inventory.StockReserved" in r and "reservation_id" in r for r in rows), out
