"""Errors of operations (read model, operator actions, dead letters, dashboard).

::

    SagasError
    └── OpsError                    operations could not do what was asked
        ├── NotFoundError           no saga (or dead letter) matches what was named
        ├── AmbiguousError          a saga id names instances of several saga types
        └── KafkaUnavailableError   the cluster cannot be reached (retryable)
"""

from __future__ import annotations

from sagas.errors import SagasError


class OpsError(SagasError):
    """Root of the operations errors."""


class NotFoundError(OpsError):
    """No saga instance, definition or dead letter matches what was named."""


class AmbiguousError(OpsError):
    """A saga id exists for several saga types: name the type with ``--saga``."""


class KafkaUnavailableError(OpsError):
    """Kafka could not be reached."""

    retryable = True
