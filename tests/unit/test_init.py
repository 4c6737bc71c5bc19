"""`sagas init`: the project it writes is complete, passes its own tests, `sagas check`,
ruff and mypy, and an occupied folder or a bad name is refused before anything is
written. Run on the broker with an installed wheel: tests/integration/test_wheel.py."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path, PurePosixPath

import pytest

from sagas.ops.cli import main
from sagas.scaffold import TEMPLATE, Names, package_name, render
from tests.project_support import REPO, mypy_path, ok, run

NAMES = Names(package="hotel", project="hotel", version="0.1.0")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project as `sagas init hotel` writes it, in a folder outside the repository."""
    root = tmp_path_factory.mktemp("init") / "hotel"
    ok(run(["sagas", "init", str(root)], root.parent))
    return root


def test_init_writes_the_project_and_its_generated_classes(project: Path) -> None:
    written = {p.relative_to(project).as_posix() for p in project.rglob("*") if p.is_file()}
    assert written == {str(path) for path in render(NAMES)} | {
        "hotel/messages/__init__.py",
        "hotel/messages/bookings.py",
        "hotel/messages/payments.py",
        "hotel/messages/rooms.py",
    }
    assert (project / ".gitignore").is_file()
    schemas = [p for p in written if p.endswith(".avsc")]
    assert len(schemas) == 11
    assert {p.split("/")[2] for p in schemas} == {"events", "commands", "replies"}
    settings = tomllib.loads((project / "pyproject.toml").read_text())
    assert settings["tool"]["sagas"] == {
        "app": "hotel.app:app",
        "schemas": "hotel/schemas",
        "messages": "hotel/messages",
    }
    assert settings["project"]["dependencies"][0].startswith("kafka-sagas>=")
    assert "schemas/*/*.avsc" in settings["tool"]["setuptools"]["package-data"]["hotel"]


def test_the_templates_leave_no_placeholder_and_every_schema_field_has_a_doc() -> None:
    files = render(Names(package="shop", project="my-shop", version="9.9"))
    assert not [str(p) for p, text in files.items() if "{{" in text]
    assert 'name = "my-shop"' in files[PurePosixPath("pyproject.toml")]
    assert "from shop.booking import BOOKING" in files[PurePosixPath("shop/app.py")]
    for path, text in files.items():
        if path.suffix == ".avsc":
            schema = json.loads(text)
            assert schema["doc"], path
            assert all(field.get("doc") for field in schema["fields"]), path


def test_the_projects_own_tests_pass(project: Path) -> None:
    out = ok(run(["python", "-m", "pytest", "-q", "-p", "no:cacheprovider"], project))
    assert "6 passed" in out


def test_sagas_check_passes_on_the_project(project: Path) -> None:
    out = ok(run(["sagas", "check"], project, env={"COLUMNS": "200"}))
    assert "11 schemas, 11 message classes" in out
    assert "4 generated files" in out
    assert "OK: no problems" in out


def test_sagas_check_fails_when_a_schema_changed_and_codegen_was_not_run(
    tmp_path: Path,
) -> None:
    root = tmp_path / "hotel"
    ok(run(["sagas", "init", str(root)], tmp_path))
    schema = root / "hotel/schemas/replies/rooms.RoomHeld.avsc"
    schema.write_text(schema.read_text().replace('"hold_id"', '"hold"'))

    check = run(["sagas", "check"], root, env={"COLUMNS": "200"})
    assert check.returncode == 1
    assert "rooms.RoomHeld" in check.stdout
    assert "hold_id" in check.stdout  # the saga and the test still read the old name


def test_the_project_passes_ruff_and_mypy_with_its_own_settings(
    project: Path, tmp_path: Path
) -> None:
    ok(run(["python", "-m", "ruff", "check", "--no-cache", "."], project))
    ok(run(["python", "-m", "ruff", "format", "--check", "--no-cache", "."], project))
    # --follow-imports=silent: the framework is type-checked as an installed package is
    # (its own errors are not the project's); the project's files all are.
    mypy = [
        "python",
        "-m",
        "mypy",
        "--follow-imports=silent",
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    out = ok(run(mypy, project, env={"MYPYPATH": str(mypy_path(tmp_path))}))
    assert "Success: no issues found" in out


def test_init_refuses_a_folder_that_is_not_empty_naming_what_it_would_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "README.md").write_text("mine\n")
    (tmp_path / "notes.txt").write_text("mine too\n")

    assert main(["init", str(tmp_path), "--name", "hotel"]) == 1
    err = capsys.readouterr().err
    assert "is not empty (it holds README.md, notes.txt; it would overwrite README.md)" in err
    assert (tmp_path / "README.md").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "notes.txt"]


@pytest.mark.parametrize(
    ("folder", "name", "problem"),
    [
        ("1st-project", None, "'1st_project' is not a Python package name"),
        ("hotel", "class", "'class' is not a Python package name"),
        ("hotel", "my-hotel", "'my-hotel' is not a Python package name"),
        ("sagas", None, "package name 'sagas' is taken"),
        ("email", None, "package name 'email' is taken"),
        ("hotel", "pytest", "a module 'pytest' is already importable"),
    ],
)
def test_init_refuses_a_name_that_is_no_package_or_is_taken(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    folder: str,
    name: str | None,
    problem: str,
) -> None:
    argv = ["init", str(tmp_path / folder), *(["--name", name] if name else [])]
    assert main(argv) == 1
    assert problem in capsys.readouterr().err
    assert not (tmp_path / folder).exists()


def test_the_package_name_comes_from_the_folder() -> None:
    assert package_name("Hotel-Bookings") == "hotel_bookings"
    assert package_name("acme.sagas") == "acme_sagas"
    assert package_name("plain") == "plain"


def test_the_wheel_ships_every_template() -> None:
    """Each template matches a package-data pattern of the repository's pyproject.toml
    (the wheel test installs the result; this says which file would be missing)."""
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["sagas"]
    base = REPO / "sagas"
    shipped = {p for pattern in patterns for p in base.glob(pattern)}
    templates = set(TEMPLATE.rglob("*"))
    assert {p for p in templates if p.is_file()} <= shipped
