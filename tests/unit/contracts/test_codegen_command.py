"""`sagas codegen`: writes what changed, removes stale generated files, `--check` lists."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sagas.contracts.codegen import HEADER
from sagas.ops.cli import main
from tests.unit.contracts.codegen_support import field, record, write

Run = tuple[int, str, str]


@pytest.fixture
def schemas(tmp_path: Path) -> Path:
    root = tmp_path / "schemas"
    write(root, record("orders.Placed", field("order_id", "string")))
    write(root, record("orders.Reserve", field("order_id", "string")), kind="commands")
    write(root, record("hr.Hired", field("employee_id", "string")))
    return root


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "generated"


def codegen(capsys: pytest.CaptureFixture[str], schemas: Path, out: Path, *extra: str) -> Run:
    code = main(["codegen", "--schemas", str(schemas), "--out", str(out), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_writes_the_package_then_nothing(
    capsys: pytest.CaptureFixture[str], schemas: Path, out: Path
) -> None:
    code, text, _ = codegen(capsys, schemas, out)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == ["__init__.py", "hr.py", "orders.py"]
    assert text.count("wrote ") == 3
    assert "0 of 3 generated files" in text
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    code, text, _ = codegen(capsys, schemas, out)
    assert code == 0
    assert "wrote" not in text
    assert "3 of 3 generated files" in text
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_only_changed_files_are_written(
    capsys: pytest.CaptureFixture[str], schemas: Path, out: Path
) -> None:
    codegen(capsys, schemas, out)
    path = schemas / "events" / "hr.Hired.avsc"
    schema = json.loads(path.read_text())
    schema["doc"] = "Someone was hired."
    path.write_text(json.dumps(schema))
    code, text, _ = codegen(capsys, schemas, out)
    assert code == 0
    assert [line for line in text.splitlines() if line.startswith("wrote")] == [
        f"wrote {out / 'hr.py'}"
    ]
    assert '"""Someone was hired.' in (out / "hr.py").read_text()


def test_check_writes_nothing_and_lists_every_stale_file(
    capsys: pytest.CaptureFixture[str], schemas: Path, out: Path
) -> None:
    code, text, _ = codegen(capsys, schemas, out, "--check")
    assert code == 1
    assert not out.exists()
    assert f"{out / 'orders.py'}: missing" in text
    assert "3 generated file(s) out of date" in text

    codegen(capsys, schemas, out)
    assert codegen(capsys, schemas, out, "--check")[0] == 0

    orders = out / "orders.py"
    edited = orders.read_text().replace("order_id: str", "order_id: int")
    orders.write_text(edited)
    (schemas / "events" / "hr.Hired.avsc").unlink()
    code, text, _ = codegen(capsys, schemas, out, "--check")
    assert code == 1
    assert f"{orders}: differs from what `sagas codegen` writes" in text
    assert f"{out / 'hr.py'}: generated from schemas that no longer exist" in text
    assert f"{out / '__init__.py'}: differs" in text
    assert orders.read_text() == edited  # --check touched nothing
    assert (out / "hr.py").exists()


def test_stale_generated_files_are_removed_and_other_files_kept(
    capsys: pytest.CaptureFixture[str], schemas: Path, out: Path
) -> None:
    codegen(capsys, schemas, out)
    (out / "old.py").write_text(f"{HEADER}: do not edit.\nX = 1\n")
    (out / "helpers.py").write_text('"""Written by hand."""\n')
    (out / "notes.txt").write_text(f"{HEADER}\n")
    code, text, _ = codegen(capsys, schemas, out)
    assert code == 0
    assert f"removed {out / 'old.py'}" in text
    assert sorted(p.name for p in out.iterdir()) == [
        "__init__.py",
        "helpers.py",
        "hr.py",
        "notes.txt",
        "orders.py",
    ]


def test_a_hand_written_module_in_the_way_is_never_overwritten(
    capsys: pytest.CaptureFixture[str], schemas: Path, out: Path
) -> None:
    out.mkdir()
    (out / "orders.py").write_text('"""Hand-written orders."""\n')
    code, text, _ = codegen(capsys, schemas, out, "--check")
    assert code == 1
    assert f"{out / 'orders.py'}: not written by `sagas codegen`" in text
    code, _, err = codegen(capsys, schemas, out)
    assert code == 1
    assert "left alone" in err
    assert (out / "orders.py").read_text() == '"""Hand-written orders."""\n'
    assert not (out / "hr.py").exists()  # nothing written when one file is in the way


def test_a_schema_no_class_can_hold_is_an_error(
    capsys: pytest.CaptureFixture[str], schemas: Path, out: Path
) -> None:
    write(schemas, record("orders.Bad", field("class", "string")))
    code, _, err = codegen(capsys, schemas, out)
    assert code == 1
    assert "orders.Bad: field 'class' of orders.Bad is a Python keyword" in err
    assert not out.exists()


def test_codegen_runs_without_importing_the_package_it_writes() -> None:
    # Every other command may import the app, and the app its message package; codegen
    # must run when that package is missing or broken.
    script = (
        "import sys\n"
        "from sagas.ops.cli import build_parser\n"
        "build_parser('codegen').parse_args(['codegen', '--check'])\n"
        "print(sorted(m for m in sys.modules if m.startswith('services')))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
