"""Keeping a folder of generated modules in step with `generate`'s output.

The only part of `sagas.contracts.codegen` that touches the disk. A file is "generated"
when its first line is `HEADER`; only such files are ever overwritten or removed, so a
hand-written module in the way is reported, never replaced.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from sagas.contracts.codegen.module import HEADER
from sagas.errors import ConfigurationError

Action = Literal["create", "update", "remove", "conflict"]

_MESSAGES: dict[Action, str] = {
    "create": "missing: run `sagas codegen`",
    "update": "differs from what `sagas codegen` writes from the schemas (edited by hand, or "
    "a schema changed): run `sagas codegen`",
    "remove": "generated from schemas that no longer exist: run `sagas codegen` (it removes "
    "the file)",
    "conflict": "not written by `sagas codegen`, but where it writes: move it away, then run "
    "`sagas codegen`",
}


@dataclass(frozen=True)
class Change:
    """One file of the folder that is not what `sagas codegen` would leave there.

    Attributes:
        path: the file.
        action: ``create`` (missing), ``update`` (differs), ``remove`` (a generated file
            no schema produces any more) or ``conflict`` (a file without the header is
            where a generated one goes).
    """

    path: Path
    action: Action

    def describe(self) -> str:
        """What is wrong with the file and what to do, for a person."""
        return _MESSAGES[self.action]

    def shown(self) -> str:
        """The file's path, relative to the current folder when it is inside it."""
        return shown(self.path)


def changes(folder: Path, sources: Mapping[str, str]) -> list[Change]:
    """How ``folder`` differs from ``sources`` (file name -> text), sorted by file name.

    Raises:
        ConfigurationError: a file cannot be read.
    """
    found: list[Change] = []
    names = set(sources)
    if folder.is_dir():
        names |= {path.name for path in folder.glob("*.py") if is_generated(path)}
    for name in sorted(names):
        path = folder / name
        text = sources.get(name)
        if text is None:
            found.append(Change(path, "remove"))
        elif not path.exists():
            found.append(Change(path, "create"))
        elif not is_generated(path):
            found.append(Change(path, "conflict"))
        elif _read(path) != text:
            found.append(Change(path, "update"))
    return found


def apply(sources: Mapping[str, str], found: Iterable[Change]) -> None:
    """Make the changes: write created and updated files, delete removed ones.

    Raises:
        ConfigurationError: a change is a conflict, or a file cannot be written.
    """
    todo = list(found)
    conflicts = [str(change.path) for change in todo if change.action == "conflict"]
    if conflicts:
        raise ConfigurationError(
            f"not written by `sagas codegen`, left alone: {', '.join(conflicts)}"
        )
    try:
        for change in todo:
            if change.action == "remove":
                change.path.unlink()
            else:
                change.path.parent.mkdir(parents=True, exist_ok=True)
                change.path.write_text(sources[change.path.name], encoding="utf-8", newline="\n")
    except OSError as exc:
        raise ConfigurationError(f"cannot write the generated modules: {exc}") from exc


def is_generated(path: Path) -> bool:
    """Whether ``path`` is a file whose first line is the `sagas codegen` header."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return file.readline().startswith(HEADER)
    except (FileNotFoundError, IsADirectoryError):
        return False
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc


def shown(path: Path) -> str:
    """``path`` relative to the current folder when it is inside it, for messages."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def _read(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8", errors="replace")  # exact: no newline mapping
    except OSError as exc:
        raise ConfigurationError(f"cannot read {path}: {exc}") from exc
