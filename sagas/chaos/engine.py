"""``python -m sagas.chaos.engine [SAGA ...]``: `sagas run` with the chaos runner's hold.

The same engine as ``sagas run``, built the same way, except that its store is a
`FaultyStore` and a `ChaosControl` follows the control file ``SAGAS_CHAOS_CONTROL``
names: the engine's clock is the system clock plus the file's offset, and its store
refuses writes while the file says so. The chaos runner starts its engines with this
entry point; ``sagas run`` has none of it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from sagas.chaos.control import ChaosControl
from sagas.chaos.store import FaultyStore
from sagas.ops import run_command
from sagas.runtime.engine import Companion
from sagas.runtime.store import Store
from sagas.runtime.worker import Clock

CONTROL_VARIABLE = "SAGAS_CHAOS_CONTROL"
"""The control file of this engine (the chaos runner sets it)."""


def controlled(path: Path) -> run_command.Extras:
    """The engine's clock and companion from the control file at ``path``."""

    def extras(store: Store) -> tuple[Clock, Sequence[Companion]]:
        assert isinstance(store, FaultyStore)  # opened as one by `main`
        control = ChaosControl(path, store)
        return control.now, [control]

    return extras


def main(argv: Sequence[str] | None = None) -> int:
    path = os.environ.get(CONTROL_VARIABLE)
    if not path:
        print(f"error: {CONTROL_VARIABLE} names no control file", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="python -m sagas.chaos.engine")
    parser.add_argument("sagas", nargs="*", metavar="SAGA")
    parser.add_argument("--app", default=None)
    args = parser.parse_args(argv)
    return run_command.main(args, controlled(Path(path)), store_type=FaultyStore)


if __name__ == "__main__":
    sys.exit(main())
