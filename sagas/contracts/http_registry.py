"""A client for a Confluent-compatible schema registry over HTTP (httpx).

The client is synchronous: the runtime calls it off the event loop (`Codec.resolve`,
`Codec.prepare`, in a worker thread), so a slow registry never stalls other
partitions. Only the two calls the codec needs are used, both part of the stable
Confluent REST API:
``POST /subjects/{subject}/versions`` (register, idempotent) and
``GET /schemas/ids/{id}`` (look up a writer schema). Answers are cached for the life of
the client: a registry id never changes meaning.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from sagas.contracts.errors import RegistryError, SchemaError, UnknownSchemaError
from sagas.contracts.registry import RegisteredSchema
from sagas.contracts.schemas import SchemaFile, canonical_json

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
ATTEMPTS = 3
"""Tries of one registry call before it fails with `RegistryError`."""
PAUSE_S = 0.2
"""Pause before the second try (doubled before the third)."""
SCHEMA_NOT_FOUND = 40403


class HttpRegistry:
    """`SchemaRegistry` backed by a Confluent-compatible HTTP registry.

    Args:
        url: base URL, e.g. ``http://registry:8081``.
        timeout: per-request timeout.
        transport: an httpx transport; tests pass an ``httpx.MockTransport`` wrapping
            `sagas.contracts.fake_registry.FakeRegistry`.

    Use as a context manager, or call `close`.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: timedelta = timedelta(seconds=5),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._client = httpx.Client(
            base_url=url,
            timeout=timeout.total_seconds(),
            transport=transport,
            headers={"Accept": CONTENT_TYPE, "Content-Type": CONTENT_TYPE},
        )
        self._by_id: dict[int, RegisteredSchema] = {}
        self._ids: dict[tuple[str, str], int] = {}

    def __enter__(self) -> HttpRegistry:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP connection pool (idempotent)."""
        self._client.close()

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        """Register ``schema`` under ``subject`` and return the id the registry gave it."""
        key = (subject, canonical_json(schema))
        if key in self._ids:
            return self._ids[key]
        body = {"schema": json.dumps(schema, sort_keys=True)}
        answer = self._call("POST", f"/subjects/{quote(subject, safe='')}/versions", body)
        schema_id = answer.get("id")
        if not isinstance(schema_id, int):
            raise RegistryError(f"registry answered without an id when registering {subject}")
        self._ids[key] = schema_id
        return schema_id

    def has(self, schema_id: int) -> bool:
        """Whether ``schema_id`` was fetched already."""
        return schema_id in self._by_id

    def lookup(self, schema_id: int) -> RegisteredSchema:
        """The schema with that id, fetched once then cached."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        answer = self._call("GET", f"/schemas/ids/{schema_id}", None)
        text = answer.get("schema")
        if answer.get("schemaType", "AVRO") != "AVRO" or not isinstance(text, str):
            raise SchemaError(f"registry id {schema_id} is not an Avro schema")
        try:
            raw = json.loads(text)
        except ValueError as exc:
            raise SchemaError(f"registry id {schema_id}: schema is not JSON: {exc}") from exc
        found = RegisteredSchema(
            id=schema_id, schema=SchemaFile.from_json(raw, f"registry id {schema_id}")
        )
        self._by_id[schema_id] = found
        return found

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        response = self._request(method, path, body)
        try:
            answer = response.json()
        except ValueError:
            answer = {}
        if not isinstance(answer, dict):
            answer = {}
        if response.is_success:
            return answer
        detail = f"{response.status_code} {answer.get('message', response.reason_phrase)}"
        if answer.get("error_code") == SCHEMA_NOT_FOUND or (
            response.status_code == 404 and path.startswith("/schemas/ids/")
        ):
            raise UnknownSchemaError(f"registry has no schema for {path}: {detail}")
        if response.status_code in (409, 422):
            raise SchemaError(f"registry refused {method} {path}: {detail}")
        raise RegistryError(f"schema registry {method} {path}: {detail}")

    def _request(self, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
        """One call, tried ``ATTEMPTS`` times while the registry cannot be reached or
        answers 5xx; then `RegistryError` (the caller retries later, never dead-letters)."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                response = self._client.request(method, path, json=body)
            except httpx.HTTPError as exc:
                if attempt == ATTEMPTS:
                    raise RegistryError(f"schema registry {method} {path} failed: {exc}") from exc
            else:
                if response.status_code < 500 or attempt == ATTEMPTS:
                    return response
            time.sleep(PAUSE_S * attempt)  # backoff between attempts (runs in a worker thread)
        raise AssertionError("unreachable")
