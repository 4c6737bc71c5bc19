"""Errors of the runtime (Kafka loop and SQLite store).

::

    SagasError
    └── RuntimeFailure              the engine's imperative shell
        ├── StoreError              the SQLite store cannot be read or written (retryable)
        │   └── StoreUnwritable     it refuses writes for now: full, read-only, locked, I/O
        ├── TopicSetupError         topics are missing and cannot be created
        └── FencedError             another process took over a partition (this one stops)
"""

from __future__ import annotations

from sagas.errors import SagasError


class RuntimeFailure(SagasError):
    """Root of the runtime's errors."""


class StoreError(RuntimeFailure):
    """The SQLite store cannot be read or written (full disk, read-only, corrupt)."""

    retryable = True


class StoreUnwritable(StoreError):
    """The store refuses writes for now (disk full, read-only, locked, I/O error).

    Nothing was written; the same write can be retried once the condition clears.
    """


class TopicSetupError(RuntimeFailure):
    """A topic the engine needs is missing and cannot be created."""


class FencedError(RuntimeFailure):
    """A newer owner of a partition fenced this process's producer."""
