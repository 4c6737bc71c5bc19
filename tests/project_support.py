"""Running a project outside the repository as its user would: commands in its folder.

Shared by the tests of ``sagas init`` and of the tutorial. A command runs in a child
process with the project's folder as its current folder, so the project is found the
way a user's shell finds it (``[tool.sagas]`` in the nearest pyproject.toml), and
nothing of it is imported into the test's own process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Variables of the developer's shell that would point a command elsewhere than at the
# project it runs in.
_FOREIGN = ("SAGAS_APP", "PYTHONPATH", "VIRTUAL_ENV")


def environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without what would point away from the project."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN}
    env.update(extra or {})
    return env


def run(
    argv: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in ``cwd``; ``python`` and ``sagas`` as first word mean this test
    run's interpreter and its ``sagas`` command."""
    words = list(argv)
    if words[0] == "python":
        words[0] = sys.executable
    elif words[0] == "sagas":
        words[:1] = [sys.executable, "-m", "sagas.ops.cli"]
    return subprocess.run(
        words,
        cwd=cwd,
        env=environment(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that must have succeeded (else its whole output fails)."""
    assert result.returncode == 0, (
        f"{' '.join(map(str, result.args))} exited {result.returncode}\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    return result.stdout


def mypy_path(tmp: Path) -> Path:
    """A folder holding only the framework (a link to ``sagas/``), for ``MYPYPATH``: mypy
    then finds the framework of this checkout as it finds an installed one, and nothing
    else of the repository (its ``tests`` package would hide the project's)."""
    folder = tmp / "mypypath"
    folder.mkdir()
    (folder / "sagas").symlink_to(REPO / "sagas", target_is_directory=True)
    return folder
