"""The error tree of the `sagas` package.

Every error the package raises on purpose derives from `SagasError`. Library errors
(aiokafka, aiosqlite, fastavro, subprocess failures) are translated at the boundary
with ``raise ... from``. Whether an error is worth retrying is a property of its type
(`retryable`), not of the call site::

    SagasError
    ├── ConfigurationError          bad settings or environment
    │   └── KafkaSecurityError      inconsistent TLS/SASL settings, unusable file (kafka_security)
    ├── KafkaAccessError            the broker refused us: password, certificate (kafka_security)
    ├── DefinitionError             a saga definition is invalid (names saga, step, problem)
    ├── ContractError               see sagas.contracts.errors: bad messages and schemas
    └── DevKafkaError               the local development broker
        ├── ToolMissingError        java or mvn not on PATH
        ├── PortInUseError          the configured port is taken
        ├── FetchError              Maven could not resolve the broker jars
        └── BrokerStartError        the broker did not come up (carries its log tail)

Later packages (contracts, runtime) add their own branches under `SagasError`.
"""

from __future__ import annotations


class SagasError(Exception):
    """Root of every error raised by the `sagas` package."""

    retryable: bool = False


class ConfigurationError(SagasError):
    """Settings or environment are invalid."""


class DefinitionError(SagasError):
    """A saga definition is invalid; the message names the saga, the step and the problem."""


class DevKafkaError(SagasError):
    """The local development broker could not be fetched, started or stopped."""


class ToolMissingError(DevKafkaError):
    """A program the dev broker needs (java, mvn) is not installed."""


class PortInUseError(DevKafkaError):
    """The port configured for the dev broker is already taken by another process."""


class FetchError(DevKafkaError):
    """Maven could not download the broker jars."""

    retryable = True


class BrokerStartError(DevKafkaError):
    """The broker process exited or did not answer before the deadline."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail

    def __str__(self) -> str:
        base = super().__str__()
        if not self.log_tail:
            return base
        return f"{base}\n--- last lines of the broker log ---\n{self.log_tail}"
