"""The error tree of the participant services; retryability is on the type.

::

    SagasError
    └── ServiceError          retryable = False
        ├── Rejected          the command cannot be applied, now or later (not retryable)
        └── Unavailable       a transient problem: the same command may succeed later

A handler raises these to make the framework reply ``sagas.CommandFailed`` with the
matching ``retryable`` flag. Any other exception counts as retryable when it is a
timeout, a connection error or a SQLite operational error (e.g. "database is locked"),
and as not retryable otherwise (a bug will not go away by itself).
"""

from __future__ import annotations

import sqlite3

from sagas.errors import SagasError


class ServiceError(SagasError):
    """Root of the errors a participant handler raises on purpose."""

    retryable = False


class Rejected(ServiceError):
    """The command cannot be applied and has no typed failure reply (not retryable)."""


class Unavailable(ServiceError):
    """A transient problem: sending the same command again may succeed."""

    retryable = True


def is_retryable(exc: BaseException) -> bool:
    """Whether a command that failed with ``exc`` is worth sending again."""
    if isinstance(exc, ServiceError):
        return exc.retryable
    return isinstance(exc, TimeoutError | ConnectionError | sqlite3.OperationalError)
