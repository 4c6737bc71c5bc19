"""Fuzz the dashboard's JSON API against its own OpenAPI description (schemathesis).

The application is served by uvicorn on a free loopback port (a thread of the test that
is joined when the test ends) over a read model holding a saga, without Kafka; once
read-only (no token) and once with a token that every generated request carries. Not
over ASGI in-process: schemathesis then keeps an anyio portal thread until interpreter
exit, which kept the process from ever exiting (issue 13). Every generated request, valid or not,
must get a documented status code other than 5xx, with a body and content type that
conform to the description.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from sagas.ops.web import WebConfig
from sagas.ops.web.server import Dashboard
from tests.integration.engine_support import app_of, two_step_saga
from tests.unit.test_ops_web import fill

TOKEN = "fuzz-token"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Bounded: about a dozen examples per operation and mode keeps each run well under a minute.
BOUNDED = settings(
    max_examples=8,
    deadline=None,
    # No shrinking: a failure is reported as found (shrinking can take minutes here).
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
# Generating invalid inputs costs hypothesis more (about 0.4 s an example on 2 busy cores).
FEWER = settings(BOUNDED, max_examples=4)


@contextmanager
def _served(tmp: Path, token: str | None) -> Iterator[Any]:
    """The dashboard's OpenAPI schema, served from a thread that ends with the block."""
    asyncio.run(fill(tmp / "ops.db"))
    config = WebConfig(
        ops_db=tmp / "ops.db",
        bootstrap_servers=None,
        app=app_of(two_step_saga("views")),
        admin_token=token,
    )
    ready = threading.Event()
    urls: list[str] = []
    errors: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def serve() -> None:
        async with Dashboard(config, port=0) as dashboard:
            urls.append(dashboard.url)
            ready.set()
            await stop.wait()

    def run() -> None:
        try:
            loop.run_until_complete(serve())
        except BaseException as exc:
            errors.append(exc)
        finally:
            ready.set()
            loop.close()

    thread = threading.Thread(target=run, name="dashboard-under-fuzz")
    thread.start()
    try:
        assert ready.wait(30), "the dashboard did not start within 30 s"
        assert urls, f"the dashboard failed to start: {errors!r}"
        yield schemathesis.openapi.from_url(f"{urls[0]}/openapi.json")
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
    assert not thread.is_alive(), "the dashboard thread did not stop"
    assert not errors, errors


def _fuzz(
    schema: Any,
    headers: dict[str, str],
    expect: Callable[[Any, Any], None],
    invalid: bool,
) -> int:
    """Run every operation with valid inputs (and invalid ones); returns the requests made."""
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        raw = operation.definition.raw
        takes_input = bool(raw.get("parameters") or raw.get("requestBody"))
        # Invalid inputs exist only for an operation that takes some.
        modes = [GenerationMode.POSITIVE] + [GenerationMode.NEGATIVE] * (takes_input and invalid)
        for mode in modes:

            @BOUNDED if mode is GenerationMode.POSITIVE else FEWER
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                nonlocal calls
                calls += 1
                # The description names the bearer scheme, so schemathesis may make up an
                # Authorization header of its own: the run's header replaces it.
                case.headers = {**(case.headers or {}), **headers}
                response = case.call_and_validate(checks=CHECKS)
                expect(case, response)

            run()
    return calls


@pytest.mark.timeout(300)
def test_the_read_only_api_never_fails_and_keeps_its_contract(tmp_path: Path) -> None:
    def expect(case: Any, response: Any) -> None:
        if case.method == "POST":
            assert response.status_code in (400, 403, 413, 422), response.text

    # Invalid inputs are sent in the run with a token, where they get past the auth check.
    with _served(tmp_path, None) as schema:
        assert _fuzz(schema, {}, expect, invalid=False) >= 80


@pytest.mark.timeout(300)
def test_the_api_with_a_token_never_fails_and_keeps_its_contract(tmp_path: Path) -> None:
    def expect(case: Any, response: Any) -> None:
        assert response.status_code not in (401, 403), response.text

    headers = {"Authorization": f"Bearer {TOKEN}"}
    with _served(tmp_path, TOKEN) as schema:
        assert _fuzz(schema, headers, expect, invalid=True) >= 120
