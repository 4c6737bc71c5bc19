"""The error tree of `sagas.contracts`.

Every problem with a schema, the registry, or a message on the wire is one of these.
Library errors (fastavro, httpx, ``json``) are translated here with ``raise ... from``.
Each error carries a stable machine-readable ``reason`` code, a human message, and,
when the caller knew them, the topic, partition and offset of the bad record, so the
runtime can put it on the dead-letter topic with `ContractError.dlq_headers`::

    SagasError
    └── ContractError              reason, message, topic/partition/offset, dlq_headers()
        ├── SchemaError            "schema-invalid": an .avsc file or registry schema is bad
        ├── RegistryError          "registry-unavailable": the HTTP registry failed (retryable)
        ├── EncodeError            "encode-failed": a record does not fit its schema
        └── MessageError           an incoming message is bad: dead-letter it, never retry
            ├── HeaderError        "header-missing", "header-duplicate", "header-invalid"
            ├── FramingError       "truncated", "bad-magic-byte"
            ├── OversizeError      "payload-too-large", "headers-too-large"
            ├── UnknownSchemaError "unknown-schema": no schema has that id (or name)
            ├── UnknownTypeError   "unknown-type": no message class for the ce_type
            ├── TypeMismatchError  "type-mismatch": ce_type is not the schema id's type
            ├── PayloadError       "payload-corrupt": the Avro body does not decode
            └── InvalidFieldError  "invalid-field": a decoded value breaks its field's type
"""

from __future__ import annotations

from typing import Self

from sagas.contracts import deadletters
from sagas.errors import SagasError


class ContractError(SagasError):
    """Root of every error of `sagas.contracts`.

    Attributes:
        reason: stable code for machines and dashboards, e.g. ``"unknown-schema"``.
        message: what went wrong, for a person.
        topic: topic of the offending record, when known.
        partition: its partition, when known.
        offset: its offset, when known.
    """

    default_reason = "contract-error"

    def __init__(
        self,
        message: str,
        *,
        reason: str | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def __str__(self) -> str:
        where = ""
        if self.topic is not None:
            where = f" (at {self.topic}"
            if self.partition is not None:
                where += f"[{self.partition}]"
            if self.offset is not None:
                where += f"@{self.offset}"
            where += ")"
        return f"[{self.reason}] {self.message}{where}"

    def located(
        self, topic: str | None, partition: int | None = None, offset: int | None = None
    ) -> Self:
        """Fill in where the bad record was read (keeps values already set); returns self."""
        self.topic = self.topic if self.topic is not None else topic
        self.partition = self.partition if self.partition is not None else partition
        self.offset = self.offset if self.offset is not None else offset
        return self

    def dlq_headers(self) -> list[tuple[str, bytes]]:
        """Headers to add to the original record when it goes to a dead-letter topic."""
        return deadletters.headers(
            self.reason,
            type(self).__name__,
            self.message,
            self.topic,
            self.partition,
            self.offset,
        )


class SchemaError(ContractError):
    """An Avro schema cannot be parsed, or is not what the project expects."""

    default_reason = "schema-invalid"


class RegistryError(ContractError):
    """The schema registry could not be reached or answered nonsense; worth retrying."""

    default_reason = "registry-unavailable"
    retryable = True


class EncodeError(ContractError):
    """A record cannot be encoded: a value does not fit its schema."""

    default_reason = "encode-failed"


class MessageError(ContractError):
    """An incoming message is unusable. It goes to the dead-letter topic, never retried."""

    default_reason = "bad-message"


class HeaderError(MessageError):
    """A required header is missing, repeated, or malformed."""

    default_reason = "header-invalid"


class FramingError(MessageError):
    """The value is not in the Confluent wire format (too short or wrong magic byte)."""

    default_reason = "truncated"


class OversizeError(MessageError):
    """The value is larger than the configured limit; it was not parsed."""

    default_reason = "payload-too-large"


class UnknownSchemaError(MessageError):
    """The registry has no schema with that id (or name)."""

    default_reason = "unknown-schema"


class UnknownTypeError(MessageError):
    """No message class is registered for the type."""

    default_reason = "unknown-type"


class TypeMismatchError(MessageError):
    """The ``ce_type`` header names another type than the schema the payload was written with."""

    default_reason = "type-mismatch"


class PayloadError(MessageError):
    """The Avro body does not decode with its writer schema."""

    default_reason = "payload-corrupt"


class InvalidFieldError(MessageError):
    """A decoded value does not fit the typed field (e.g. an unknown enum symbol)."""

    default_reason = "invalid-field"
