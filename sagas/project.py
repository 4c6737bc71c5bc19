"""A project's ``[tool.sagas]`` table in its ``pyproject.toml``.

A project (a team's package of sagas, messages and participants) names its app and its
folders once::

    [tool.sagas]
    app = "tenants.app:app"          # the `sagas.App` every command uses
    schemas = "tenants/schemas"      # the Avro schemas (`sagas codegen`, `sagas check`)
    messages = "tenants/messages"    # where `sagas codegen` writes the typed classes

Paths are relative to the folder holding ``pyproject.toml``. Commands look for the
nearest ``pyproject.toml`` with a ``[tool.sagas]`` table from the current folder up.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from sagas.errors import ConfigurationError

PYPROJECT = "pyproject.toml"


@dataclass(frozen=True)
class Project:
    """What ``[tool.sagas]`` says.

    Attributes:
        root: the folder of the ``pyproject.toml``.
        app: the app's import path (``module:attribute``), if given.
        schemas: the schemas folder, if given.
        messages: the folder of the generated message classes, if given.
    """

    root: Path
    app: str | None = None
    schemas: Path | None = None
    messages: Path | None = None

    @property
    def path(self) -> Path:
        """The ``pyproject.toml`` itself."""
        return self.root / PYPROJECT


def find_project(start: Path | None = None) -> Project | None:
    """The nearest project with a ``[tool.sagas]`` table, from ``start`` (the current
    folder) up; None when there is none.

    Raises:
        ConfigurationError: that ``pyproject.toml`` cannot be read, or the table is wrong.
    """
    folder = (start or Path.cwd()).resolve()
    for candidate in (folder, *folder.parents):
        path = candidate / PYPROJECT
        if not path.is_file():
            continue
        table = _table(path)
        if table is not None:
            return _project(candidate, table)
    return None


def _table(path: Path) -> dict[str, object] | None:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
    tool = document.get("tool")
    table = tool.get("sagas") if isinstance(tool, dict) else None
    return table if isinstance(table, dict) else None


def _project(root: Path, table: dict[str, object]) -> Project:
    unknown = sorted(set(table) - {"app", "schemas", "messages"})
    if unknown:
        raise ConfigurationError(
            f"{root / PYPROJECT}: unknown key(s) in [tool.sagas]: {', '.join(unknown)} "
            "(known: app, schemas, messages)"
        )
    values: dict[str, str] = {}
    for key in ("app", "schemas", "messages"):
        value = table.get(key)
        if value is None:
            continue
        if not isinstance(value, str) or not value:
            raise ConfigurationError(f"{root / PYPROJECT}: [tool.sagas] {key} must be a string")
        values[key] = value
    return Project(
        root=root,
        app=values.get("app"),
        schemas=root / values["schemas"] if "schemas" in values else None,
        messages=root / values["messages"] if "messages" in values else None,
    )
