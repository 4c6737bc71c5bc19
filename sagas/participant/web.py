"""A participant's small HTTP endpoint: health, invariants, and the service's own routes.

``GET /health`` (service name, ``ok``, commands processed), ``GET /invariants`` (200
when every business invariant holds, else 500 with the broken ones) and, for each of
the participant's ``routes``, ``POST <path>`` with a JSON body (201 with the route's
answer; 400 when the body is not JSON or the route refuses it; 503 with ``Retry-After``
while the schema registry cannot be reached). Served by uvicorn in the service's own
event loop, on 127.0.0.1 unless configured otherwise.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sagas.contracts.errors import RegistryError

if TYPE_CHECKING:
    from sagas.participant.service import ParticipantService

log = logging.getLogger(__name__)


def build_web(service: ParticipantService) -> Starlette:
    """The ASGI application of ``service``'s endpoint."""

    async def health(request: Request) -> JSONResponse:
        return JSONResponse(
            {
                "service": service.participant.name,
                "status": "ok",
                "processed": await service.store.processed_count(),
            }
        )

    async def invariants(request: Request) -> JSONResponse:
        broken = await service.invariants()
        return JSONResponse(
            {"ok": not broken, "broken": broken}, status_code=500 if broken else 200
        )

    def post(path: str) -> Any:
        async def route(request: Request) -> JSONResponse:
            try:
                body = await request.json()
                result = await service.handle_route(path, body)
            except (ValueError, TypeError, KeyError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=400)
            except RegistryError as exc:  # down for now: the client may try again
                return JSONResponse(
                    {"error": str(exc)}, status_code=503, headers={"Retry-After": "5"}
                )
            return JSONResponse(result, status_code=201)

        return route

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/invariants", invariants, methods=["GET"]),
        *(Route(path, post(path), methods=["POST"]) for path in service.participant.routes),
    ]
    return Starlette(routes=routes)


class WebEndpoint:
    """Serves `build_web` in a task of the running loop until `stop`."""

    def __init__(self, service: ParticipantService, host: str, port: int) -> None:
        config = uvicorn.Config(
            build_web(service), host=host, port=port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = False  # type: ignore[attr-defined]  # uvicorn attribute, absent from its stubs
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Return once it listens (raises what made it fail to start)."""
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task
                raise RuntimeError("the participant's web endpoint stopped while starting")
            await asyncio.sleep(0.02)  # polling uvicorn's started flag, bounded by the task

    async def stop(self) -> None:
        """Stop serving (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._server.should_exit = True
        await task
