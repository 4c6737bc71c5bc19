"""Encode envelopes to Kafka headers + value, and decode them back, validating everything.

The value is in the Confluent wire format::

    byte 0      magic byte, always 0
    bytes 1-4   schema id, unsigned 32-bit big-endian, resolved by the registry
    bytes 5-    the record, Avro binary (fastavro schemaless encoding)

A reader decodes with the writer's schema (looked up by id) resolved against its own
current schema of the same name, so data written with an older released version reads
into today's class.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Iterable, Mapping

import fastavro
import fastavro.validation

from sagas.contracts.classmap import ClassMap
from sagas.contracts.convert import from_avro, to_avro
from sagas.contracts.errors import (
    ContractError,
    EncodeError,
    FramingError,
    MessageError,
    OversizeError,
    PayloadError,
    TypeMismatchError,
    UnknownTypeError,
)
from sagas.contracts.headers import Headers, RawHeaders, from_headers, to_headers
from sagas.contracts.record import Envelope
from sagas.contracts.registry import SchemaRegistry
from sagas.contracts.schemas import SchemaFile

MAGIC_BYTE = 0
PREFIX_BYTES = 5
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024


class Codec:
    """Turns `Envelope`\\ s into Kafka messages and back.

    Args:
        registry: resolves schema ids (embedded or HTTP).
        schemas: the current (reader) schema of every known type, by full name.
        classes: the typed class of every known type.
        max_payload_bytes: values longer than this are rejected before parsing.

    Raises:
        UnknownTypeError: a class has no schema in ``schemas``.
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        schemas: Mapping[str, SchemaFile],
        classes: ClassMap,
        *,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        missing = [name for name in classes if name not in schemas]
        if missing:
            raise UnknownTypeError(f"no schema for message classes {', '.join(missing)}")
        self.registry = registry
        self.classes = classes
        self.max_payload_bytes = max_payload_bytes
        self._schemas = dict(schemas)
        self._writer_ids: dict[str, int] = {}

    def __enter__(self) -> Codec:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the registry's connections (idempotent)."""
        self.registry.close()

    async def resolve(self, values: Iterable[bytes | None]) -> None:
        """Fetch, off the event loop, the writer schemas of ``values`` the registry has
        not cached yet, so `decode` (synchronous) does not wait on the network.

        Raises:
            RegistryError: the registry could not be reached (after its own retries):
                decode these values later, they are not bad.
        """
        ids = {
            int.from_bytes(v[1:PREFIX_BYTES], "big")
            for v in values
            if v is not None and len(v) >= PREFIX_BYTES and v[0] == MAGIC_BYTE
        }
        missing = [i for i in sorted(ids) if not self.registry.has(i)]
        for schema_id in missing:
            try:
                await asyncio.to_thread(self.registry.lookup, schema_id)
            except MessageError:
                continue  # no such schema: `decode` reports it as the message's error

    async def prepare(self) -> None:
        """Register every known type's writer schema now, off the event loop (so the
        first `encode` of each type does not wait on the network).

        Raises:
            RegistryError: the registry could not be reached.
        """
        for name in self.classes:
            if name not in self._writer_ids:
                self._writer_ids[name] = await asyncio.to_thread(
                    self.registry.register, name, self.schema_of(name).raw
                )

    def schema_of(self, name: str) -> SchemaFile:
        """The current schema of a type; raises `UnknownTypeError`."""
        schema = self._schemas.get(name)
        if schema is None:
            raise UnknownTypeError(f"no schema for type {name!r:.80}")
        return schema

    def writer_id(self, name: str) -> int:
        """The registry id the current schema of ``name`` is written with (registered once)."""
        found = self._writer_ids.get(name)
        if found is None:
            found = self.registry.register(name, self.schema_of(name).raw)
            self._writer_ids[name] = found
        return found

    def encode(self, envelope: Envelope) -> tuple[Headers, bytes]:
        """Headers and value of the Kafka message carrying ``envelope``.

        Raises:
            EncodeError: the payload does not fit its schema, or the envelope is inconsistent.
            UnknownTypeError: the payload's type is not in the class map.
            RegistryError: the HTTP registry could not register the schema.
        """
        payload = envelope.payload
        if envelope.type != payload.SCHEMA:
            raise EncodeError(f"envelope type {envelope.type} but payload is {payload.SCHEMA}")
        if self.classes.get(envelope.type) is not type(payload):
            raise EncodeError(f"{type(payload).__qualname__} is not the class of {payload.SCHEMA}")
        schema = self.schema_of(envelope.type)
        datum = to_avro(payload)
        buffer = io.BytesIO()
        buffer.write(bytes([MAGIC_BYTE]))
        buffer.write(self.writer_id(envelope.type).to_bytes(4, "big"))
        try:
            # The writer alone lets e.g. a 64-bit value into an Avro int; validate first.
            fastavro.validation.validate(datum, schema.parsed, raise_errors=True)
            fastavro.schemaless_writer(buffer, schema.parsed, datum, strict=True)
            headers = to_headers(envelope)
        except Exception as exc:  # fastavro raises ValueError, TypeError, OverflowError...
            raise EncodeError(f"{envelope.type}: {exc}") from exc
        return headers, buffer.getvalue()

    def decode(
        self,
        headers: RawHeaders,
        value: bytes | None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> Envelope:
        """Validate and decode one Kafka message.

        Args:
            headers: the record's headers, aiokafka style.
            value: the record's value.
            topic, partition, offset: where it was read, copied into any error raised.

        Raises:
            MessageError: a subclass naming what is wrong; goes to the dead-letter topic.
            RegistryError: the HTTP registry could not be reached (retry later).
        """
        try:
            return self._decode(headers, value)
        except ContractError as exc:
            exc.located(topic, partition, offset)
            raise

    def _decode(self, headers: RawHeaders, value: bytes | None) -> Envelope:
        if not isinstance(value, bytes):
            raise FramingError("message has no value")
        if len(value) > self.max_payload_bytes:
            raise OversizeError(
                f"value is {len(value)} bytes, more than the limit of {self.max_payload_bytes}"
            )
        meta = from_headers(headers)
        cls = self.classes.get(meta.type)
        reader = self.schema_of(meta.type)
        if len(value) < PREFIX_BYTES:
            raise FramingError(f"value is {len(value)} bytes, shorter than the wire prefix")
        if value[0] != MAGIC_BYTE:
            raise FramingError(f"magic byte is {value[0]}, expected 0", reason="bad-magic-byte")
        writer = self.registry.lookup(int.from_bytes(value[1:PREFIX_BYTES], "big"))
        if writer.name != meta.type:
            raise TypeMismatchError(
                f"ce_type is {meta.type} but schema id {writer.id} is {writer.name}"
            )
        datum = self._read(value, writer.schema, reader)
        return Envelope(
            id=meta.id,
            type=meta.type,
            source=meta.source,
            time=meta.time,
            payload=from_avro(cls, datum),
            saga_id=meta.saga_id,
            reply_to=meta.reply_to,
            in_reply_to=meta.in_reply_to,
            traceparent=meta.traceparent,
            tracestate=meta.tracestate,
            compensates=meta.compensates,
        )

    @staticmethod
    def _read(value: bytes, writer: SchemaFile, reader: SchemaFile) -> object:
        body = io.BytesIO(value)
        body.seek(PREFIX_BYTES)
        same = writer.raw == reader.raw
        try:
            datum: object = fastavro.schemaless_reader(
                body, writer.parsed, None if same else reader.parsed
            )
        except Exception as exc:  # EOFError, UnicodeDecodeError, SchemaResolutionError...
            raise PayloadError(f"{writer.name}: Avro body does not decode: {exc!r:.200}") from exc
        if body.tell() != len(value):
            raise PayloadError(f"{writer.name}: {len(value) - body.tell()} bytes after the record")
        return datum
