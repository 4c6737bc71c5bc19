"""The application object: a team's sagas, messages, schemas and participants in one value.

A project exposes one `App`, and every command is pointed at it the same way::

    sagas run --app tenants.app:app          # an option of every command
    SAGAS_APP=tenants.app:app sagas run      # or the environment
    [tool.sagas] app = "tenants.app:app"     # or the project's pyproject.toml

`load_app` resolves them in that order (`app_spec` says which is named, without importing
it). Nothing is registered anywhere: the app is a
frozen value built by the project's own code, and several can live in one process.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from sagas.contracts import framework
from sagas.contracts.classmap import ClassMap
from sagas.contracts.record import Record
from sagas.contracts.schemas import SchemaTree, load_tree, merge
from sagas.contracts.usages import Usage
from sagas.definition import Saga
from sagas.errors import ConfigurationError
from sagas.project import find_project

if TYPE_CHECKING:
    import httpx

    from sagas.contracts.codec import Codec
    from sagas.contracts.settings import ContractSettings
    from sagas.participant.definition import Participant

APP_VARIABLE = "SAGAS_APP"
"""The environment variable naming the app (``module:attribute``)."""


class AppError(ConfigurationError):
    """No app was named, or the one named cannot be loaded or is not an `App`."""


@dataclass(frozen=True, kw_only=True, eq=False)
class App:
    """A project's sagas, message contracts and participants.

    Attributes:
        name: the project's name, for people (logs, the dashboard's title).
        sagas: every version of every saga definition the project runs (a version is
            kept while instances started on it may still be running).
        messages: the project's message classes: the package `sagas codegen` generated
            (its ``ALL_MESSAGES``), or the classes themselves. The framework's own
            (outcome events, operator actions, ``CommandFailed``) are always added.
        schemas: the project's Avro schemas folder (events/, commands/, replies/,
            history/); the framework's own schemas are always added.
        participants: the project's participant services, run by ``sagas serve NAME``.

    Raises:
        ConfigurationError: two definitions share a name and version, or two
            participants a name.
    """

    name: str
    sagas: Sequence[Saga[Any]] = ()
    messages: ModuleType | Sequence[type[Record]] = ()
    schemas: Path | None = None
    participants: Sequence[Participant] = field(default=())

    def __post_init__(self) -> None:
        seen: set[tuple[str, int]] = set()
        for saga in self.sagas:
            if (saga.name, saga.version) in seen:
                raise ConfigurationError(
                    f"app {self.name}: saga {saga.name!r} version {saga.version} is given twice"
                )
            seen.add((saga.name, saga.version))
        names = [p.name for p in self.participants]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ConfigurationError(f"app {self.name}: participant(s) given twice: {twice}")

    # -- sagas ------------------------------------------------------------------------

    @cached_property
    def definitions(self) -> Mapping[str, Mapping[int, Saga[Any]]]:
        """Every definition by saga name, then version."""
        table: dict[str, dict[int, Saga[Any]]] = {}
        for saga in self.sagas:
            table.setdefault(saga.name, {})[saga.version] = saga
        return table

    @cached_property
    def latest(self) -> Mapping[str, Saga[Any]]:
        """The newest version of each saga, by name (new sagas start on it)."""
        return {name: versions[max(versions)] for name, versions in self.definitions.items()}

    def select(self, names: Sequence[str] = ()) -> list[Saga[Any]]:
        """Every version of the sagas named (of all of them when none is).

        Raises:
            ConfigurationError: a name the app does not have (the message lists them).
        """
        unknown = sorted(set(names) - set(self.definitions))
        if unknown:
            known = ", ".join(sorted(self.definitions)) or "none"
            raise ConfigurationError(
                f"no saga definition {', '.join(map(repr, unknown))} in app {self.name}; "
                f"known: {known}"
            )
        return [s for s in self.sagas if not names or s.name in names]

    def participant(self, name: str) -> Participant:
        """The participant called ``name``.

        Raises:
            ConfigurationError: the app has none of that name (the message lists them).
        """
        for participant in self.participants:
            if participant.name == name:
                return participant
        known = ", ".join(sorted(p.name for p in self.participants)) or "none"
        raise ConfigurationError(f"no participant {name!r} in app {self.name}; known: {known}")

    # -- contracts --------------------------------------------------------------------

    @cached_property
    def message_classes(self) -> tuple[type[Record], ...]:
        """The project's own message classes (without the framework's)."""
        if isinstance(self.messages, ModuleType):
            classes = getattr(self.messages, "ALL_MESSAGES", None)
            if not isinstance(classes, tuple):
                raise ConfigurationError(
                    f"app {self.name}: module {self.messages.__name__} has no ALL_MESSAGES "
                    "tuple (is it the package `sagas codegen` writes?)"
                )
            return classes
        return tuple(self.messages)

    @property
    def messages_dir(self) -> Path | None:
        """The folder of the generated message package, when ``messages`` is one."""
        if isinstance(self.messages, ModuleType) and self.messages.__file__:
            return Path(self.messages.__file__).resolve().parent
        return None

    @cached_property
    def classes(self) -> ClassMap:
        """The class of every message type: the framework's and the project's."""
        return ClassMap((*framework.MESSAGES, *self.message_classes))

    @cached_property
    def own_schemas(self) -> SchemaTree | None:
        """The project's schemas alone (None when it has none); loading errors kept."""
        return None if self.schemas is None else load_tree(self.schemas)

    @cached_property
    def schema_tree(self) -> SchemaTree:
        """The framework's schemas and the project's, as one tree (errors raised)."""
        own = self.own_schemas
        if own is None:
            return framework.schema_tree()
        return merge(framework.schema_tree(), own).raise_errors()

    def codec(
        self,
        settings: ContractSettings | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
    ) -> Codec:
        """A codec over the app's schemas and classes, with the registry ``settings``
        name (read from the environment when not given). Close it when done."""
        from sagas.contracts.factory import build_codec

        return build_codec(self.schema_tree, self.classes, settings, transport=transport)

    def usages(self) -> list[Usage]:
        """What the sagas and participants read of each message (for ``sagas check``)."""
        found: list[Usage] = []
        for saga in self.sagas:
            found.extend(saga_usages(saga))
        for participant in self.participants:
            found.extend(participant.usages())
        return found


def saga_usages(saga: Saga[Any]) -> list[Usage]:
    """A definition's usages in the contracts checker's shape: one per message type,
    with every field the saga reads of it, and where the roles it plays."""
    fields: dict[str, list[str]] = {}
    roles: dict[str, list[str]] = {}
    for usage in saga.usages():
        fields.setdefault(usage.schema, [])
        roles.setdefault(usage.schema, [])
        if usage.field is not None:
            fields[usage.schema].append(usage.field)
        elif usage.role not in roles[usage.schema]:
            roles[usage.schema].append(usage.role)
    return [
        Usage(
            type=schema,
            fields=tuple(fields[schema]),
            where=f"saga {saga.name} ({', '.join(roles[schema]) or 'reads'})",
        )
        for schema in sorted(fields)
    ]


@dataclass(frozen=True)
class AppSpec:
    """Which app a command is pointed at, and where that was said; not yet imported.

    Attributes:
        spec: as given, ``package.module:attribute`` or ``package.module``.
        origin: where it was given: ``--app``, ``SAGAS_APP`` or the pyproject's table.
        root: the project's folder, for an app named by ``[tool.sagas]``.
    """

    spec: str
    origin: str
    root: Path | None = None

    @property
    def qualified(self) -> str:
        """``module:attribute``, with ``app`` when the attribute was left out."""
        module_name, _, attribute = self.spec.partition(":")
        return f"{module_name}:{attribute or 'app'}"


def app_spec(spec: str | None = None, *, cwd: Path | None = None) -> AppSpec | None:
    """The app named by ``spec`` (``--app``), else ``SAGAS_APP``, else the nearest
    ``pyproject.toml``'s ``[tool.sagas] app`` from ``cwd`` up; None when none is.

    Raises:
        ConfigurationError: the nearest ``[tool.sagas]`` table cannot be read.
    """
    if spec:
        return AppSpec(spec, "--app")
    variable = os.environ.get(APP_VARIABLE)
    if variable:
        return AppSpec(variable, APP_VARIABLE)
    project = find_project((cwd or Path.cwd()).resolve())
    if project is not None and project.app:
        return AppSpec(project.app, f"[tool.sagas] app in {project.path}", project.root)
    return None


def load_app(spec: str | None = None, *, cwd: Path | None = None) -> App:
    """The app named by ``spec`` (``--app``), else ``SAGAS_APP``, else the nearest
    ``pyproject.toml``'s ``[tool.sagas] app`` (see `app_spec`).

    ``spec`` is ``package.module:attribute`` (``:app`` when the attribute is left out);
    the attribute is an `App`, or a function returning one. The current folder (and,
    for a pyproject's app, the project's folder) is put on ``sys.path`` first, as
    ``python -m`` does, so a project's package imports without being installed.

    Raises:
        AppError: no app is named, its module does not import, or the attribute is not
            an `App`; the message says which and how to fix it.
    """
    folder = (cwd or Path.cwd()).resolve()
    named = app_spec(spec, cwd=folder)
    if named is None:
        raise AppError(
            "no app: name your project's sagas.App with --app package.module:app, the "
            f"{APP_VARIABLE} variable, or `app = ...` under [tool.sagas] in pyproject.toml "
            "(`sagas init PATH` creates a project with one)"
        )
    if named.root is not None:
        _importable(named.root)
    _importable(folder)
    return _resolve(named.spec, named.origin)


def _importable(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))


def _resolve(spec: str, origin: str) -> App:
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppError(
            f"cannot import {module_name!r} (app {spec!r}, from {origin}): {exc}"
        ) from exc
    value: object = module
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise AppError(f"{module_name} has no attribute {attribute!r} (from {origin})")
        value = getattr(value, part)
    if callable(value) and not isinstance(value, App):
        value = value()
    if not isinstance(value, App):
        raise AppError(f"{spec} (from {origin}) is a {type(value).__name__}, not a sagas.App")
    return value
