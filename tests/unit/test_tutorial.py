"""docs/tutorial.md, steps 1 to 6, done as its reader does them in a folder outside the
repository (tests/tutorial_support.py): `sagas init`, the files written, `sagas codegen`,
the project's own tests, `sagas check`; then a renamed field caught, and the project's
lint and types. Step 7, on Kafka: tests/integration/test_tutorial.py."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests import tutorial_support as doc
from tests.project_support import Processes, mypy_path, ok, run

KAFKA_SECTION = "7."


@pytest.fixture(scope="module")
def reader(tmp_path_factory: pytest.TempPathFactory) -> doc.Reader:
    """The reader after step 6, with this run's ``sagas`` and ``pytest`` on the PATH."""
    home = tmp_path_factory.mktemp("reader")
    reader = doc.Reader(home, Path(sys.executable).parent, Processes(home / "logs"))
    reader.follow(stop_at=KAFKA_SECTION)
    assert not reader.processes.started  # nothing runs in the background before step 7
    return reader


def test_the_reader_types_exactly_the_commands_the_tests_run() -> None:
    assert doc.commands() == [
        "sagas init signup",
        "cd signup",
        "pytest",
        "rm signup/booking.py signup/place.py signup/participants/rooms.py "
        "signup/participants/payments.py",
        "rm signup/schemas/*/*.avsc tests/test_booking.py tests/test_participants.py",
        "sagas codegen",
        "pytest tests/test_saga.py",
        "pytest",
        "sagas check",
        "sagas dev kafka fetch",
        "sagas dev kafka start",
        "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092",
        "sagas run &",
        "sagas serve hosting &",
        "sagas serve billing &",
        "python -m signup.place acme globex",
        "python -m signup.place initech --card tok_empty",
        "python -m signup.place www",
        "sagas list",
        "sagas show tenant:initech",
        "kill %1 %2 %3",
        "sagas dev kafka stop",
    ]
    schemas = [p for p in doc.files() if p.endswith(".avsc")]
    assert len(schemas) == 15
    assert sorted(set(doc.files()) - set(schemas)) == [
        "signup/app.py",
        "signup/participants/billing.py",
        "signup/participants/hosting.py",
        "signup/place.py",
        "signup/saga.py",
        "tests/test_billing.py",
        "tests/test_saga.py",
        "tests/test_system.py",
    ]
    assert doc.uncaptioned() == []  # every block of code is run


def test_the_scaffold_passes_its_tests_before_the_reader_changes_it(reader: doc.Reader) -> None:
    outputs = [out for command, out in reader.outputs if command == "pytest"]
    assert "6 passed" in outputs[0]


def test_codegen_writes_the_readers_classes_and_removes_the_examples(reader: doc.Reader) -> None:
    out = reader.output("sagas codegen")
    for module in ("billing", "hosting", "tenants"):
        assert f"wrote signup/messages/{module}.py" in out
    for module in ("bookings", "payments", "rooms"):
        assert f"removed signup/messages/{module}.py" in out
    generated = sorted(p.name for p in (reader.cwd / "signup" / "messages").glob("*.py"))
    assert generated == ["__init__.py", "billing.py", "hosting.py", "tenants.py"]


def test_the_tutorials_own_tests_pass_the_happy_and_the_failure_paths(
    reader: doc.Reader,
) -> None:
    assert len(doc.tests_in("tests/test_saga.py")) == 4
    assert "4 passed" in reader.output("pytest tests/test_saga.py")
    # the saga's four, billing's one and the whole system's two
    assert "7 passed" in reader.output("pytest")


def test_sagas_check_passes_on_the_tutorials_project(reader: doc.Reader) -> None:
    out = reader.output("sagas check")
    assert "15 schemas, 15 message classes" in out
    assert "OK: no problems" in out
    assert "unreleased (no history yet):" in out  # our fifteen, never released


def test_sagas_check_names_a_field_the_saga_reads_that_a_schema_renamed(
    reader: doc.Reader, tmp_path: Path
) -> None:
    """What the tutorial says happens when `hostname` is renamed in the schema."""
    project = tmp_path / "signup"
    shutil.copytree(reader.cwd, project)
    schema = project / "signup/schemas/replies/hosting.SubdomainReserved.avsc"
    text = schema.read_text()
    assert text.count('"name": "hostname"') == 1
    schema.write_text(text.replace('"name": "hostname"', '"name": "host"'))
    env = reader.env

    ok(run(["sagas", "codegen"], project, env=env))
    check = run(["sagas", "check"], project, env=env)

    assert check.returncode == 1, check.stdout + check.stderr
    said = next(b.body for b in doc.blocks() if b.body.startswith("error: invalid saga"))
    assert check.stderr.strip() == said.strip()


def test_the_tutorials_project_passes_its_lint_and_types(
    reader: doc.Reader, tmp_path: Path
) -> None:
    project = reader.cwd
    ok(run(["python", "-m", "ruff", "check", "--no-cache", "."], project))
    ok(run(["python", "-m", "ruff", "format", "--check", "--no-cache", "."], project))
    mypy = ["python", "-m", "mypy", "--follow-imports=silent", "--cache-dir", str(tmp_path / "c")]
    out = ok(run(mypy, project, env={"MYPYPATH": str(mypy_path(tmp_path))}))
    assert "Success: no issues found" in out


def test_a_generated_excerpt_that_differs_from_codegen_fails_the_reader(tmp_path: Path) -> None:
    """The tutorial's excerpts of generated files are checked, not only shown."""
    text = doc.markdown()
    changed = text.replace('"""Why a charge was declined."""', '"""Why, we will never know."""')
    assert changed != text
    reader = doc.Reader(tmp_path, Path(sys.executable).parent, Processes(tmp_path / "logs"))
    with pytest.raises(AssertionError, match=r"signup/messages/billing\.py differs"):
        reader.follow(changed, stop_at="3.")
