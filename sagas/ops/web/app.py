"""The dashboard application: FastAPI, its lifespan, security headers, error mapping."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from sagas.contracts.factory import build_codec
from sagas.ops.actions import Sender
from sagas.ops.errors import AmbiguousError, KafkaUnavailableError, NotFoundError, OpsError
from sagas.ops.readmodel import Follower, OpsStore
from sagas.ops.web import api, pages
from sagas.ops.web.state import WebConfig, WebState

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
}
# The interactive docs (/docs) load their assets from a CDN; on that page only, allow
# them, since nothing else can be fetched from outside at run time.
DOCS_CSP = (
    SECURITY_HEADERS["Content-Security-Policy"]
    .replace("script-src 'self'", "script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net")
    .replace("style-src 'self'", "style-src 'self' https://cdn.jsdelivr.net")
)

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
            codec = build_codec()
            stack.callback(codec.close)
            follower = sender = None
            if config.bootstrap_servers:
                follower = Follower(
                    store,
                    config.bootstrap_servers,
                    codec,
                    topic_prefix=config.topic_prefix,
                    client_options=config.client_options,
                )
                await stack.enter_async_context(follower)
                sender = Sender(config.bootstrap_servers, codec, config.topic_prefix)
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

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if request.url.path in ("/docs", "/redoc"):
            response.headers["Content-Security-Policy"] = DOCS_CSP
        return response

    for error, code in ERRORS:
        app.add_exception_handler(error, _handler(code))
    return app


def _handler(code: int) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        return JSONResponse({"detail": str(exc)}, status_code=code)

    return handle
