"""Run the dashboard: in-process (`Dashboard`, for tests and the demo) or as `sagas web`."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from sagas.ops.web.app import create_app
from sagas.ops.web.state import WebConfig

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class Dashboard:
    """The dashboard served by uvicorn inside the running event loop.

    ``async with Dashboard(config, port=0) as dash:`` serves on a free port of
    127.0.0.1 (``dash.url``) until the block ends; `stop` is idempotent.
    """

    def __init__(
        self, config: WebConfig, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT
    ) -> None:
        self.app = create_app(config)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                host=host,
                port=port,
                log_level="warning",
                lifespan="on",
                timeout_graceful_shutdown=5,
            )
        )
        self._server.install_signal_handlers = False  # type: ignore[attr-defined]  # uvicorn attribute, absent from its stubs
        self._task: asyncio.Task[None] | None = None
        self.host = host
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Serve in a task of the current loop; return once it listens."""
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what made it fail
                raise RuntimeError("the dashboard stopped while starting")
            await asyncio.sleep(0.05)  # polling uvicorn's started flag, bounded by the task
        sockets = [s for server in self._server.servers for s in server.sockets]
        if sockets:
            self.port = int(sockets[0].getsockname()[1])
        log.info("dashboard on %s", self.url)

    async def stop(self) -> None:
        """Stop serving and wait for the server task (idempotent)."""
        task, self._task = self._task, None
        if task is None:
            return
        state = getattr(self.app.state, "web", None)
        if state is not None:
            state.stopping.set()  # ends the live-update streams
        self._server.should_exit = True
        await task

    async def __aenter__(self) -> Dashboard:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def serve(config: WebConfig, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn handles the signals)."""
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=host,
            port=port,
            log_level="info",
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    asyncio.run(server.serve())
