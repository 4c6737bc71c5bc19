"""An in-process fake of a Confluent-compatible schema registry, for tests.

It answers the REST calls `HttpRegistry` makes (and a few read-only ones useful in
assertions) through ``httpx.MockTransport``, so no socket and no real registry is
needed::

    fake = FakeRegistry()
    with HttpRegistry("http://registry", transport=fake.transport()) as registry:
        ...

Ids are handed out like Confluent does: one global counter, the same schema text under
any subject keeps its id.
"""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

_VERSIONS = re.compile(r"^/subjects/([^/]+)/versions$")
_VERSION = re.compile(r"^/subjects/([^/]+)/versions/(latest|[0-9]+)$")
_BY_ID = re.compile(r"^/schemas/ids/([0-9]+)$")


class FakeRegistry:
    """The state and request handler of the fake registry.

    Attributes:
        schemas: schema text by id.
        subjects: ids of each subject's versions, oldest first.
        requests: every request seen, as ``"METHOD path"``.
        fail_with: when set, every request answers this HTTP status (to test outages).
    """

    def __init__(self, first_id: int = 1) -> None:
        self.schemas: dict[int, str] = {}
        self.subjects: dict[str, list[int]] = {}
        self.requests: list[str] = []
        self.fail_with: int | None = None
        self._next_id = first_id

    def transport(self) -> httpx.MockTransport:
        """An httpx transport that serves this fake."""
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request the way a Confluent registry would."""
        path = request.url.path
        self.requests.append(f"{request.method} {path}")
        if self.fail_with is not None:
            return _error(self.fail_with, self.fail_with * 100, "injected failure")
        if request.method == "POST" and (match := _VERSIONS.match(path)):
            return self._register(match.group(1), request)
        if request.method == "GET" and (match := _BY_ID.match(path)):
            text = self.schemas.get(int(match.group(1)))
            if text is None:
                return _error(404, 40403, "Schema not found")
            return httpx.Response(200, json={"schema": text})
        if request.method == "GET" and path == "/subjects":
            return httpx.Response(200, json=sorted(self.subjects))
        if request.method == "GET" and (match := _VERSION.match(path)):
            return self._version(match.group(1), match.group(2))
        return _error(404, 404, f"no route {request.method} {path}")

    def _register(self, subject: str, request: httpx.Request) -> httpx.Response:
        try:
            text = json.loads(request.content)["schema"]
            json.loads(text)
        except (ValueError, KeyError, TypeError):
            return _error(422, 42201, "Invalid schema")
        for known_id, known in self.schemas.items():
            if known == text:
                schema_id = known_id
                break
        else:
            schema_id = self._next_id
            self._next_id += 1
            self.schemas[schema_id] = text
        versions = self.subjects.setdefault(subject, [])
        if schema_id not in versions:
            versions.append(schema_id)
        return httpx.Response(200, json={"id": schema_id})

    def _version(self, subject: str, version: str) -> httpx.Response:
        versions = self.subjects.get(subject)
        if not versions:
            return _error(404, 40401, "Subject not found")
        index = len(versions) if version == "latest" else int(version)
        if not 1 <= index <= len(versions):
            return _error(404, 40402, "Version not found")
        schema_id = versions[index - 1]
        body: dict[str, Any] = {
            "subject": subject,
            "version": index,
            "id": schema_id,
            "schema": self.schemas[schema_id],
        }
        return httpx.Response(200, json=body)


def _error(status: int, code: int, message: str) -> httpx.Response:
    return httpx.Response(status, json={"error_code": code, "message": message})
