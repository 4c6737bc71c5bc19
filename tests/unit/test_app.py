"""How a command finds its app: ``--app``, else ``SAGAS_APP``, else ``[tool.sagas] app``
in the nearest pyproject.toml; and what it says when there is none or it is wrong.

Each test writes its own small modules in a temporary folder; the resolver puts folders
on ``sys.path`` and imports them, so both are restored after each test.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagas.app import APP_VARIABLE, AppError, AppSpec, app_spec, load_app
from sagas.ops.cli import main

# Module names unique to this file, removed from sys.modules after each test.
FLAG, VARIABLE, PYPROJECT, NOT_APP = "lookup_flag", "lookup_env", "lookup_project", "lookup_bad"


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv(APP_VARIABLE, raising=False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in (FLAG, VARIABLE, PYPROJECT, NOT_APP, "lookup_pkg", "lookup_pkg.app"):
        sys.modules.pop(name, None)


def _module(folder: Path, name: str, body: str) -> None:
    path = folder.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body, encoding="utf-8")


def _app_module(folder: Path, name: str) -> None:
    _module(folder, name, f"from sagas import App\napp = App(name={name!r})\n")


def _pyproject(root: Path, table: str) -> None:
    (root / "pyproject.toml").write_text(f"[tool.sagas]\n{table}\n", encoding="utf-8")


@pytest.fixture
def three_apps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project whose pyproject names one app, with two more importable apps."""
    for name in (FLAG, VARIABLE, PYPROJECT):
        _app_module(tmp_path, name)
    _pyproject(tmp_path, f'app = "{PYPROJECT}:app"')
    return tmp_path


def test_the_option_comes_first(three_apps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APP_VARIABLE, f"{VARIABLE}:app")
    assert load_app(f"{FLAG}:app", cwd=three_apps).name == FLAG


def test_then_the_variable(three_apps: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APP_VARIABLE, f"{VARIABLE}:app")
    assert load_app(None, cwd=three_apps).name == VARIABLE


def test_then_the_nearest_pyproject_from_a_subfolder(three_apps: Path) -> None:
    below = three_apps / "a" / "b"
    below.mkdir(parents=True)
    # Imported from the project's folder, not from the current one.
    assert load_app(None, cwd=below).name == PYPROJECT


def test_an_empty_variable_counts_as_unset(
    three_apps: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(APP_VARIABLE, "")
    assert load_app("", cwd=three_apps).name == PYPROJECT


def test_the_attribute_defaults_to_app_and_may_be_a_function(tmp_path: Path) -> None:
    _module(tmp_path, "lookup_pkg.app", "from sagas import App\napp = App(name='plain')\n")
    assert load_app("lookup_pkg.app", cwd=tmp_path).name == "plain"
    _module(
        tmp_path, NOT_APP, "from sagas import App\ndef build() -> App:\n    return App(name='b')\n"
    )
    assert load_app(f"{NOT_APP}:build", cwd=tmp_path).name == "b"


def test_no_app_anywhere_says_the_three_ways(tmp_path: Path) -> None:
    with pytest.raises(AppError) as caught:
        load_app(None, cwd=tmp_path)
    message = str(caught.value)
    assert message.startswith("no app:")
    for way in ("--app", APP_VARIABLE, "[tool.sagas]", "sagas init"):
        assert way in message


def test_a_pyproject_without_an_app_is_no_app(tmp_path: Path) -> None:
    _pyproject(tmp_path, 'schemas = "schemas"')
    with pytest.raises(AppError, match=r"^no app:"):
        load_app(None, cwd=tmp_path)


def test_a_module_that_does_not_exist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(APP_VARIABLE, "lookup_missing.app:app")
    with pytest.raises(AppError) as caught:
        load_app(None, cwd=tmp_path)
    message = str(caught.value)
    assert "cannot import 'lookup_missing.app'" in message
    assert f"from {APP_VARIABLE}" in message


def test_an_attribute_the_module_lacks(tmp_path: Path) -> None:
    _app_module(tmp_path, FLAG)
    with pytest.raises(AppError, match=rf"^{FLAG} has no attribute 'nope' \(from --app\)$"):
        load_app(f"{FLAG}:nope", cwd=tmp_path)


def test_an_attribute_that_is_not_an_app(tmp_path: Path) -> None:
    _module(tmp_path, NOT_APP, "app = 42\nnamed = {'name': 'x'}\n")
    _pyproject(tmp_path, f'app = "{NOT_APP}:named"')
    with pytest.raises(AppError) as caught:
        load_app(None, cwd=tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{NOT_APP}:named (from [tool.sagas] app in ")
    assert message.endswith("is a dict, not a sagas.App")
    with pytest.raises(AppError, match=r"is a int, not a sagas\.App$"):
        load_app(NOT_APP, cwd=tmp_path)


def test_an_app_error_is_a_configuration_error_the_cli_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["diagram", "order_fulfilment", "--app", "lookup_missing:app"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot import 'lookup_missing' (app 'lookup_missing:app', ")
    assert "\n" not in err


def test_which_app_is_named_is_known_without_importing_it(tmp_path: Path) -> None:
    root = tmp_path.resolve()
    _pyproject(root, 'app = "lookup_missing.app"')
    named = app_spec(None, cwd=root)
    assert named == AppSpec(
        "lookup_missing.app", f"[tool.sagas] app in {root / 'pyproject.toml'}", root
    )
    assert named.qualified == "lookup_missing.app:app"
    assert app_spec("x:y", cwd=tmp_path) == AppSpec("x:y", "--app")
