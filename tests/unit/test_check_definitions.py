"""`sagas check` covers the shipped saga definitions and participant handlers."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from sagas.contracts.check import run_check
from sagas.contracts.compat import Mode
from sagas.contracts.messages import default_class_map
from sagas.contracts.schemas import default_schemas_dir
from sagas.ops.check_command import project_usages, saga_usages
from sagas.ops.cli import main
from services.definitions import all_definitions
from services.shipped import all_participants


def test_usages_cover_every_definition_and_service() -> None:
    wheres = {u.where for u in project_usages()}
    for saga in all_definitions():
        assert any(w.startswith(f"saga {saga.name}") for w in wheres)
    for participant in all_participants():
        assert any(w.startswith(f"service {participant.name}") for w in wheres)


def test_saga_usages_carry_the_fields_read() -> None:
    [saga] = [d for d in all_definitions() if d.name == "order_fulfilment"]
    by_type = {u.type: u for u in saga_usages(saga)}
    assert by_type["inventory.StockReserved"].fields == ("reservation_id",)
    assert "order_id" in by_type["orders.OrderPlaced"].fields
    assert by_type["payments.CapturePayment"].where == "saga order_fulfilment (sends)"


def test_the_repository_passes_with_the_project_usages() -> None:
    report, _ = run_check(
        default_schemas_dir(), default_class_map(), Mode.BACKWARD, project_usages()
    )
    assert report.ok, report.problems
    assert report.usages == len(project_usages())


def _without_field(root: Path, relative: str, field: str) -> None:
    path = root / relative
    schema = json.loads(path.read_text())
    schema["fields"] = [f for f in schema["fields"] if f["name"] != field]
    path.write_text(json.dumps(schema, indent=2))


def test_a_field_the_saga_reads_removed_from_its_schema_fails_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "schemas"
    shutil.copytree(default_schemas_dir(), root)
    _without_field(root, "replies/inventory.StockReserved.avsc", "reservation_id")

    report, _ = run_check(root, default_class_map(), Mode.BACKWARD, project_usages())
    usage_problems = [p for p in report.problems if p.check == "usage"]
    assert usage_problems, report.problems
    [problem] = [p for p in usage_problems if "order_fulfilment" in p.message]
    assert (problem.schema, problem.field) == ("inventory.StockReserved", "reservation_id")

    monkeypatch.setenv("COLUMNS", "250")
    assert main(["check", "--schemas", str(root)]) == 1
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if "usage" in line]
    assert any("inventory.StockReserved" in r and "reservation_id" in r for r in rows), out
