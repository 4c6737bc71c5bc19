"""A whole app without a broker: its engine and participants on the in-memory broker.

`MemorySystem` (`system.py`) starts the real engine and the app's participant services
on one `sagas.runtime.transport.memory.MemoryBroker`; `Scripted` (`scripted.py`) stands
in for the command types a test fakes. Users import `MemorySystem` from `sagas.testing`.
"""

from __future__ import annotations

from sagas.testing_memory.system import DEADLINE, MemorySystem

__all__ = ["DEADLINE", "MemorySystem"]
