"""`sagas demo`, `load`, `chaos` and `bench` drive the shipped examples (their workloads,
seeds and expected outcomes): named any other app, they refuse it rather than run the
examples anyway.

Each command's own handler is replaced by one that records the call, so that nothing
starts a broker or a process.
"""

from __future__ import annotations

import argparse
from types import ModuleType

import pytest

from sagas.app import APP_VARIABLE
from sagas.bench import command as bench
from sagas.chaos import command as chaos
from sagas.ops import cli
from sagas.ops.demo import command as demo
from sagas.ops.demo import load
from services.app import SPEC
from tests.project_support import REPO

COMMANDS: dict[str, ModuleType] = {"demo": demo, "load": load, "chaos": chaos, "bench": bench}


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The commands whose handler was called; run from the repository's root, whose
    pyproject names the examples."""
    monkeypatch.delenv(APP_VARIABLE, raising=False)
    monkeypatch.chdir(REPO)
    calls: list[str] = []
    for name, module in COMMANDS.items():

        def handler(args: argparse.Namespace, name: str = name) -> int:
            calls.append(name)
            return 0

        monkeypatch.setattr(module, "main", handler)
    return calls


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("where", ["option", "top-level option", "variable"])
def test_another_app_is_refused_in_one_line(
    name: str,
    where: str,
    ran: list[str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    words = {
        "option": [name, "--app", "mypkg.app:app"],
        "top-level option": ["--app", "mypkg.app:app", name],
        "variable": [name],
    }[where]
    if where == "variable":
        monkeypatch.setenv(APP_VARIABLE, "mypkg.app:app")
    assert cli.main(words) == 2
    assert ran == []
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"error: sagas {name} runs the shipped examples ({SPEC}), ")
    origin = APP_VARIABLE if where == "variable" else "--app"
    assert f"not mypkg.app:app (from {origin}); " in err
    assert "`sagas run`" in err
    assert "`sagas serve NAME`" in err


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("app", [None, SPEC, "services.app"])
def test_the_examples_app_or_none_runs(name: str, app: str | None, ran: list[str]) -> None:
    assert cli.main([name, *(["--app", app] if app else [])]) == 0
    assert ran == [name]


def test_the_cli_names_the_examples_as_they_name_themselves() -> None:
    assert cli.EXAMPLES_APP == SPEC
