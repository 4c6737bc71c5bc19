"""The files of a new project, as ``sagas init`` writes them.

The templates are package data under ``template/``. Every file ends in ``.tmpl``, so no
tool takes one for a module of this package; ``package/`` becomes the project's package
and ``gitignore`` its ``.gitignore``; ``{{package}}``, ``{{project}}`` and ``{{version}}``
are replaced by the package's name, the project's and the framework's version. The
message classes are not templates: ``sagas init`` generates them from the schemas, as
``sagas codegen`` does, so the schemas stay their single source.
"""

from __future__ import annotations

import importlib.util
import keyword
import re
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path, PurePosixPath

from sagas.errors import ConfigurationError

TEMPLATE = Path(__file__).resolve().parent / "template"
"""The templates' folder (package data)."""

SUFFIX = ".tmpl"
_RENAMED = {"gitignore": ".gitignore"}
_PACKAGE_FOLDER = "package"
_TOKEN = re.compile(r"\{\{(\w+)\}\}")
# Names a project's package must not take: they would shadow the framework, the
# project's own tests folder, or be shadowed by it.
_TAKEN = {"sagas", "tests", "test"}


@dataclass(frozen=True)
class Names:
    """What the templates are filled with.

    Attributes:
        package: the project's Python package (an identifier), e.g. ``hotel``.
        project: the project's distribution name, e.g. ``hotel-bookings``.
        version: the framework's version, the least the project depends on.
    """

    package: str
    project: str
    version: str


def framework_version() -> str:
    """The installed kafka-sagas' version (``0.1.0`` when it is not installed)."""
    try:
        return metadata.version("kafka-sagas")
    except metadata.PackageNotFoundError:
        return "0.1.0"


def package_name(folder: str) -> str:
    """The package name a folder's name suggests: lowercase, ``_`` for what is not a
    letter, digit or ``_`` (``Hotel-Bookings`` gives ``hotel_bookings``)."""
    return re.sub(r"\W+", "_", folder.strip().lower(), flags=re.ASCII).strip("_")


def check_package(name: str) -> None:
    """Refuse a package name that is not a plain identifier or that is taken.

    Raises:
        ConfigurationError: what is wrong with ``name``, and what to do (``--name``).
    """
    if not name.isidentifier() or not name.isascii() or keyword.iskeyword(name):
        raise ConfigurationError(
            f"{name!r} is not a Python package name (letters, digits and _, not starting "
            "with a digit, not a keyword): choose one with --name"
        )
    if name in _TAKEN or name in sys.stdlib_module_names:
        raise ConfigurationError(
            f"package name {name!r} is taken (the standard library, the framework or the "
            "tests folder): choose another with --name"
        )
    if importlib.util.find_spec(name) is not None:
        raise ConfigurationError(
            f"a module {name!r} is already importable here; the project's package would "
            "shadow it or be shadowed by it: choose another name with --name"
        )


def render(names: Names) -> dict[PurePosixPath, str]:
    """Every file of the new project but its generated message classes, by path relative
    to the project's folder."""
    values = {"package": names.package, "project": names.project, "version": names.version}
    files: dict[PurePosixPath, str] = {}
    for path in sorted(TEMPLATE.rglob("*" + SUFFIX)):
        parts = list(path.relative_to(TEMPLATE).parts)
        if parts[0] == _PACKAGE_FOLDER:
            parts[0] = names.package
        parts[-1] = parts[-1].removesuffix(SUFFIX)
        parts[-1] = _RENAMED.get(parts[-1], parts[-1])
        text = path.read_text(encoding="utf-8")
        files[PurePosixPath(*parts)] = _TOKEN.sub(lambda m: values[m[1]], text)
    return files
