"""Process faults: SIGKILL of engines, services and the broker; SIGSTOP past a timeout."""

from __future__ import annotations

from sagas.chaos.faults.base import Fault

FAULTS: dict[str, Fault] = {}
