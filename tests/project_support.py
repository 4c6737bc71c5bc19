"""Running a project outside the repository as its user would: commands in its folder.

Shared by the tests of ``sagas init`` and of the tutorial. A command runs in a child
process with the project's folder as its current folder, so the project is found the
way a user's shell finds it (``[tool.sagas]`` in the nearest pyproject.toml), and
nothing of it is imported into the test's own process.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


def command(argv: Sequence[str], bin_dir: Path | None = None) -> list[str]:
    """``argv`` with ``python`` or ``sagas`` as first word made the interpreter and the
    ``sagas`` command of ``bin_dir`` (a virtualenv's), else of this test run."""
    words = list(argv)
    if bin_dir is not None and words[0] in ("python", "sagas"):
        words[0] = str(bin_dir / words[0])
    elif words[0] == "python":
        words[0] = sys.executable
    elif words[0] == "sagas":
        words[:1] = [sys.executable, "-m", "sagas.ops.cli"]
    return words


def run(
    argv: Sequence[str],
    cwd: Path,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    bin_dir: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` (see `command`) in ``cwd`` and wait for it."""
    return subprocess.run(
        command(argv, bin_dir),
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


@dataclass
class Processes:
    """Long-running commands a test started (``sagas run``, ``sagas serve NAME``), each
    in its own session and logging to its own file; `stop` ends each by its pid."""

    logs: Path
    started: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cwd: Path,
        *,
        env: Mapping[str, str] | None = None,
        bin_dir: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` (see `command`) in ``cwd``, its output to ``<logs>/<name>.log``."""
        assert name not in self.started, name
        self.logs.mkdir(parents=True, exist_ok=True)
        with (self.logs / f"{name}.log").open("wb") as log:
            process = subprocess.Popen(
                command(argv, bin_dir),
                cwd=cwd,
                env=environment({**(env or {}), "PYTHONUNBUFFERED": "1"}),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.started[name] = process
        return process

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def assert_running(self) -> None:
        """Fail, with its log, when a process has ended already."""
        for name, process in self.started.items():
            code = process.poll()
            assert code is None, f"{name} exited {code}:\n{self.log(name)[-4000:]}"

    def stop(self, within: float = 30.0) -> dict[str, int]:
        """SIGTERM to each process still running, then wait for all until ``within``
        seconds have passed; any still alive then is killed (SIGKILL) and reported.
        Returns each process's exit code."""
        for process in self.started.values():
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + within
        stuck: list[str] = []
        for name, process in self.started.items():
            try:
                process.wait(timeout=max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                stuck.append(name)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait()
        assert not stuck, f"still running {within} s after SIGTERM, killed: {stuck}"
        return {name: process.returncode for name, process in self.started.items()}

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        # After a failure too: nothing a test started outlives it. A process that needed
        # SIGKILL is reported, unless the test already failed for another reason.
        if any(p.poll() is None for p in self.started.values()):
            try:
                self.stop()
            except AssertionError:
                if kind is None:
                    raise
