"""The dashboard application: FastAPI, its lifespan, security headers, error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sagas.kafka_security import check_access
from sagas.ops.actions import Sender
from sagas.ops.errors import AmbiguousError, KafkaUnavailableError, NotFoundError, OpsError
from sagas.ops.readmodel import Follower, OpsStore
from sagas.ops.web import api, pages
from sagas.ops.web.state import WebConfig, WebState
from sagas.runtime.partitioning import Partitioning

SECURITY_HEADERS = {
    # No inline script or style anywhere: the page's one script and stylesheet are files.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Saga data must not linger in shared or browser caches; only /static may be cached.
    "Cache-Control": "no-store",
}
# The interactive docs (/docs) load their assets from a CDN; on that page only, allow
# them, since nothing else can be fetched from outside at run time.
DOCS_CSP = (
    SECURITY_HEADERS["Content-Security-Policy"]
    .replace("script-src 'self'", "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net")
    .replace("style-src 'self'", "style-src 'self' https://cdn.jsdelivr.net")
)

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted (an action is a few hundred bytes); larger: 413."""

ERRORS: tuple[tuple[type[OpsError], int], ...] = (
    (NotFoundError, 404),
    (AmbiguousError, 409),
    (KafkaUnavailableError, 503),
    (OpsError, 400),
)


def _lifespan(config: WebConfig) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Open the read model and the action sender; follow Kafka while serving."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            store = await OpsStore.open(config.ops_db)
            stack.push_async_callback(store.close)
            codec = config.app.codec()
            stack.callback(codec.close)
            follower = sender = None
            if config.bootstrap_servers:
                if config.kafka is not None:  # a refused login stops the dashboard here
                    await check_access(
                        config.bootstrap_servers, config.kafka, config.client_options
                    )
                follower = Follower(
                    store,
                    config.bootstrap_servers,
                    codec,
                    topic_prefix=config.topic_prefix,
                    client_options=config.client_options,
                )
                await stack.enter_async_context(follower)
                sender = Sender(
                    config.bootstrap_servers,
                    codec,
                    config.topic_prefix,
                    client_options=config.client_options,
                    key_of=Partitioning(config.app.definitions, 1).key,
                )
                await stack.enter_async_context(sender)
            stopping = asyncio.Event()
            app.state.web = WebState(config, store, codec, follower, sender, stopping)
            async with asyncio.TaskGroup() as tg:
                if follower is not None:
                    tg.create_task(follower.run(stopping))
                try:
                    yield
                finally:
                    stopping.set()

    return lifespan


def create_app(config: WebConfig) -> FastAPI:
    """The dashboard for ``config``; its lifespan opens the read model and follows Kafka."""
    app = FastAPI(
        title="sagas operations API",
        description="Every saga of every engine process: list, inspect, act.",
        version="1",
        lifespan=_lifespan(config),
    )
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=Path(__file__).parent / "static"), name="static")
    app.add_middleware(BodyLimit, max_bytes=MAX_BODY_BYTES)
    if config.cors_origins:
        # Off unless SAGAS_WEB_CORS_ORIGINS lists origins: without it no response carries
        # Access-Control-Allow-Origin and a preflight gets no CORS headers (405).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path.startswith("/static/"):
            del response.headers["Cache-Control"]
        if request.url.path in ("/docs", "/redoc"):
            response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    for error, code in ERRORS:
        app.add_exception_handler(error, _handler(code))
    return app


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is refused with 413, unread.

    Checked on the declared ``Content-Length`` and again while the body streams in (a
    chunked body declares none), so an oversized body is never buffered whole.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.max_bytes:
            await _too_large(self.max_bytes)(scope, receive, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise HTTPException(413, f"request body over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


def _too_large(limit: int) -> Response:
    return JSONResponse({"detail": f"request body over {limit} bytes"}, status_code=413)


def _handler(code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handle
