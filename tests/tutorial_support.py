"""docs/tutorial.md as files: its code blocks written out as the `tutorial` package.

A fenced block right under a line naming a file (`` `tutorial/saga.py` ``) is that
file; under `` `tutorial/saga.py` (continued) `` it is the next part of it (after two
blank lines). The caption
is plain Markdown, so the reader sees it wherever the page is rendered. ``$ `` lines of
``console`` blocks are the commands the reader types; the tests run each of them.
"""

from __future__ import annotations

import importlib
import re
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from services.app import SCHEMAS

TUTORIAL = Path(__file__).resolve().parents[1] / "docs" / "tutorial.md"
PACKAGE = "tutorial"

_FENCE = re.compile(
    r"^(?:`(?P<title>[\w./-]+)`(?P<continued> \(continued\))?\n)?"
    r"```(?P<lang>[\w-]+)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


def markdown() -> str:
    return TUTORIAL.read_text(encoding="utf-8")


def files(text: str | None = None) -> dict[str, str]:
    """Every titled block, by path; blocks of one path joined in order."""
    found: dict[str, str] = {}
    for match in _FENCE.finditer(markdown() if text is None else text):
        title = match["title"]
        if title is None:
            continue
        assert (title in found) == bool(match["continued"]), f"{title}: (continued)?"
        # two blank lines between the parts, as between top-level definitions
        found[title] = found[title] + "\n\n" + match["body"] if title in found else match["body"]
    return found


def uncaptioned(text: str | None = None) -> list[str]:
    """The first line of every code block (other than console, text and diagrams)
    that names no file, so would not be run."""
    return [
        match["body"].partition("\n")[0]
        for match in _FENCE.finditer(markdown() if text is None else text)
        if match["title"] is None and match["lang"] not in ("console", "text", "mermaid")
    ]


def commands(text: str | None = None) -> list[str]:
    """The commands of the ``console`` blocks, in order, without the ``$ ``."""
    return [
        line.removeprefix("$ ")
        for match in _FENCE.finditer(markdown() if text is None else text)
        if match["lang"] == "console"
        for line in match["body"].splitlines()
        if line.startswith("$ ")
    ]


def tests_in(path: str) -> list[str]:
    """The names of the test functions in one of the tutorial's files."""
    return re.findall(r"^(?:async )?def (test_\w+)", files()[path], re.MULTILINE)


def write(root: Path, text: str | None = None) -> Path:
    """Do what the reader does, under ``root``: the package, a copy of the repository's
    schemas folder, then every titled block. Returns ``root``."""
    package = root / PACKAGE
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    shutil.copytree(SCHEMAS, package / "schemas")
    for title, body in files(text).items():
        path = root / title
        assert path.resolve().is_relative_to(package.resolve()), title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body, encoding="utf-8")
    return root


@contextmanager
def importable(root: Path) -> Iterator[None]:
    """``root`` on ``sys.path`` so ``import tutorial`` finds it; forgotten afterwards, so
    the next test can import its own copy."""
    sys.path.insert(0, str(root))
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m == PACKAGE or m.startswith(PACKAGE + ".")]:
            del sys.modules[name]
