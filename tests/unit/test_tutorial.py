"""docs/tutorial.md, steps 1 to 5: its files written out, `sagas check` over its schemas
folder, and its own tests run (saga against the Harness, a service without a broker).
Step 6, on Kafka, is tests/integration/test_tutorial.py."""

from __future__ import annotations

import importlib
import inspect
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagas.ops.cli import main
from tests import tutorial_support as doc


@pytest.fixture
def tutorial(tmp_path: Path) -> Iterator[Path]:
    """The tutorial as the reader ends up with it, importable as ``tutorial``."""
    root = doc.write(tmp_path / "work")
    with doc.importable(root):
        yield root


def test_the_reader_types_exactly_the_commands_the_tests_run() -> None:
    assert doc.commands() == [
        "mkdir tutorial && touch tutorial/__init__.py",
        "cp -r schemas tutorial/schemas",
        "sagas check --schemas tutorial/schemas --messages tutorial.messages",
        "pytest tutorial/test_saga.py",
        "sagas dev kafka start",
        "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092 python -m tutorial.run",
    ]
    assert sorted(doc.files()) == [
        "tutorial/billing.py",
        "tutorial/contracts.py",
        "tutorial/hosting.py",
        "tutorial/messages.py",
        "tutorial/run.py",
        "tutorial/saga.py",
        *sorted(p for p in doc.files() if p.startswith("tutorial/schemas/")),
        "tutorial/test_saga.py",
        "tutorial/test_services.py",
    ]
    assert len([p for p in doc.files() if p.endswith(".avsc")]) == 15
    assert doc.uncaptioned() == []  # every block of code is run


def test_sagas_check_passes_on_the_tutorials_schemas(
    tutorial: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tutorial)
    monkeypatch.setenv("COLUMNS", "250")
    [check] = [c for c in doc.commands() if c.startswith("sagas check")]

    assert main(shlex.split(check)[1:]) == 0
    out = capsys.readouterr().out
    assert "OK: no problems" in out
    assert "unreleased (no history yet):" in out  # our fifteen, never released


def test_sagas_check_names_a_field_the_class_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """What the tutorial says happens when `hostname` is renamed in the class."""
    text = doc.markdown()
    renamed = text.replace(
        '"hosting.SubdomainReserved"\n\n    tenant_id: str\n    hostname: str',
        '"hosting.SubdomainReserved"\n\n    tenant_id: str\n    host: str',
    )
    assert renamed != text
    root = doc.write(tmp_path / "work", renamed)
    monkeypatch.chdir(root)
    monkeypatch.setenv("COLUMNS", "250")
    with doc.importable(root):
        code = main(["check", "--schemas", "tutorial/schemas", "--messages", "tutorial.messages"])
    out = capsys.readouterr().out
    assert code == 1
    assert any("hosting.SubdomainReserved" in line and "host" in line for line in out.splitlines())


def test_sagas_check_refuses_a_module_without_messages(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["check", "--messages", "tests.tutorial_support"]) == 1
    assert "tests.tutorial_support has no MESSAGES" in capsys.readouterr().err
    assert main(["check", "--messages", "tutorial_that_is_not_there"]) == 1
    assert "cannot import tutorial_that_is_not_there" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("module", "name"),
    [("tutorial.test_saga", n) for n in doc.tests_in("tutorial/test_saga.py")]
    + [("tutorial.test_services", n) for n in doc.tests_in("tutorial/test_services.py")],
)
async def test_the_tutorials_own_tests_pass(
    tutorial: Path, tmp_path: Path, module: str, name: str
) -> None:
    test = getattr(importlib.import_module(module), name)
    kwargs = {"tmp_path": tmp_path} if "tmp_path" in inspect.signature(test).parameters else {}
    result = test(**kwargs)
    if inspect.isawaitable(result):
        await result


def test_the_tutorials_code_passes_the_projects_lint_and_format(tmp_path: Path) -> None:
    root = doc.write(tmp_path / "work")
    # In the reader's checkout, tutorial/ sits next to sagas/ and services/: one section.
    config = [
        "--config",
        str(doc.TUTORIAL.parents[1] / "pyproject.toml"),
        "--config",
        "lint.isort.known-first-party=['sagas', 'services', 'tutorial']",
    ]
    for command in (["check", *config, "tutorial"], ["format", "--check", *config, "tutorial"]):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", *command],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
        assert ruff.returncode == 0, ruff.stdout + ruff.stderr


def test_the_tutorial_has_tests_for_the_happy_and_the_failure_paths() -> None:
    assert len(doc.tests_in("tutorial/test_saga.py")) >= 2
    assert doc.tests_in("tutorial/test_services.py")
