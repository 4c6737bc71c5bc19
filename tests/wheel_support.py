"""The framework as a user gets it: this checkout's wheel, installed in a new virtualenv
outside the repository.

`build_venv` copies what the wheel is built from (pyproject.toml, README.md, ``sagas/``)
to a temporary folder, so building writes nothing into the checkout (no ``build/``, no
``*.egg-info``), builds the wheel with pip (``pip wheel --no-deps``: no new dependency),
and installs it with its dependencies, and pytest, into a virtualenv made without pip
(this run's pip installs into it with ``--python``). Every package is constrained to
its version in this run's environment (``pip freeze``), so pip finds it in its cache
instead of resolving and downloading newer ones.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.project_support import REPO, environment

_SOURCES = ("pyproject.toml", "README.md", "sagas")


@dataclass(frozen=True)
class WheelVenv:
    """A virtualenv holding this checkout's wheel and its dependencies, nothing else.

    Attributes:
        root: the virtualenv's folder.
        wheel: the wheel installed in it.
        timings: seconds taken by each stage of building it.
    """

    root: Path
    wheel: Path
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def bin_dir(self) -> Path:
        """Its ``bin`` folder: ``python``, ``sagas``, ``pytest``."""
        return self.root / "bin"


def _run(argv: list[str], cwd: Path) -> None:
    done = subprocess.run(
        argv, cwd=cwd, env=environment(), capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"{' '.join(argv)}\n{done.stdout}\n{done.stderr}"


def build_venv(folder: Path) -> WheelVenv:
    """Build the wheel and the virtualenv under ``folder`` (outside the repository)."""
    timings: dict[str, float] = {}
    began = time.monotonic()
    source = folder / "source"
    source.mkdir(parents=True)
    for name in _SOURCES:
        path = REPO / name
        if path.is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    dist = folder / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    _run([*pip, "wheel", "--no-deps", "--quiet", "--wheel-dir", str(dist), str(source)], folder)
    [wheel] = dist.glob("kafka_sagas-*.whl")
    timings["wheel"] = time.monotonic() - began

    began = time.monotonic()
    root = folder / "venv"
    # sys.executable is this run's virtualenv: venv bases the new one on the same
    # interpreter, not on this environment.
    _run([sys.executable, "-m", "venv", "--without-pip", str(root)], folder)
    frozen = subprocess.run(
        [*pip, "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    constraints = folder / "constraints.txt"
    # A constraint is a name and a version: direct references (name @ url) cannot be one.
    constraints.write_text(
        "".join(f"{line}\n" for line in frozen.splitlines() if " @ " not in line)
    )
    target = str(root / "bin" / "python")
    # pytest and pytest-asyncio: what a project's tests need (the tutorial has its reader
    # install them with the framework).
    install = [*pip, "--python", target, "install", "--quiet", "-c", str(constraints)]
    _run([*install, str(wheel), "pytest", "pytest-asyncio"], folder)
    timings["venv"] = time.monotonic() - began
    return WheelVenv(root=root, wheel=wheel, timings=timings)
