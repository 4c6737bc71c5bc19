"""What the operations commands need to see a running ``sagas demo --keep``.

The demo runs its processes with a topic prefix of its own and keeps its read model in
its work folder, so ``sagas list`` in another terminal, with nothing set, would answer
from ``.sagas/ops.db`` with no saga. While it runs, ``sagas demo --keep`` therefore

* prints the lines to paste (`paste_lines`): ``KAFKA_BOOTSTRAP_SERVERS``,
  ``SAGAS_TOPIC_PREFIX`` and ``SAGAS_OPS_DB`` (a read model of the CLI's own, next to
  the demo's);
* writes them to ``.sagas/demo.env`` (`DEMO_ENV`, relative to the folder it was started
  from) with its pid, and removes the file when it stops.

Every operations command run from the same folder (`apply_demo_env`) reads that file
when none of its variables is set, says so on stderr, and uses them; a file whose
demo is gone (its pid no longer runs) is ignored, and so is the file when any of the
variables is set (the environment always wins, whole).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping, MutableMapping
from pathlib import Path

DEMO_ENV = Path(".sagas/demo.env")
"""Where ``sagas demo --keep`` leaves its settings, relative to the working folder."""

VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "SAGAS_TOPIC_PREFIX", "SAGAS_OPS_DB")
"""What the operations commands need to find the demo's sagas."""


def demo_variables(bootstrap: str, prefix: str, ops_db: Path) -> dict[str, str]:
    """The variables that point the operations commands at one demo."""
    return dict(zip(VARIABLES, (bootstrap, prefix, str(ops_db)), strict=True))


def paste_lines(variables: Mapping[str, str]) -> list[str]:
    """Shell lines that set ``variables`` (quoted as needed)."""
    return [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]


def write_demo_env(variables: Mapping[str, str], pid: int, path: Path = DEMO_ENV) -> Path:
    """Write ``variables`` for the demo running as ``pid``; returns the file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# written by `sagas demo --keep`; removed when it stops. The operations commands",
        "# (sagas list, show, web...) run from this folder read it when none of these",
        "# variables is set.",
        f"# pid {pid}",
        *(f"{name}={shlex.quote(value)}" for name, value in variables.items()),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def remove_demo_env(pid: int, path: Path = DEMO_ENV) -> None:
    """Remove the file if the demo running as ``pid`` wrote it."""
    if path.exists() and _read(path)[1] == pid:
        path.unlink(missing_ok=True)


def apply_demo_env(
    environ: MutableMapping[str, str] | None = None, path: Path = DEMO_ENV
) -> str | None:
    """Set the demo's variables in ``environ`` (default: this process's) when the file
    is there, its demo runs and none of them is set. Returns what to tell the user on
    stderr (None: there is no file)."""
    env = os.environ if environ is None else environ
    if not path.is_file():
        return None
    variables, pid = _read(path)
    if pid is None or not _running(pid):
        return f"ignoring {path}: the demo that wrote it (pid {pid}) is not running"
    already = [name for name in variables if env.get(name)]
    if already:
        return f"ignoring {path}: {', '.join(already)} is set"
    env.update(variables)
    shown = ", ".join(f"{k}={v}" for k, v in variables.items())
    return f"using the running demo's settings from {path}: {shown}"


def _read(path: Path) -> tuple[dict[str, str], int | None]:
    variables: dict[str, str] = {}
    pid = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("# pid "):
            pid = int(line.removeprefix("# pid ").strip())
        elif line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            if name in VARIABLES:
                variables[name] = shlex.split(value)[0] if value else ""
    return variables, pid


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it runs
        return True
    return True
