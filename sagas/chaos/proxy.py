"""A TCP proxy on loopback whose behaviour changes at run time: the network of chaos runs.

Clients connect to ``127.0.0.1:<port>``; each connection is relayed to the upstream
address. The mode applies to every connection, existing and new:

* normal: bytes pass as they come;
* latency: every chunk, in both directions, is delivered ``ms`` milliseconds after it
  arrived (order kept, throughput not throttled);
* blackhole: connections are accepted and read, and everything is dropped; nothing
  is answered. Connections that lost bytes are reset on `heal` (their byte streams have
  holes), as a real connection would die after a long partition;
* reset: every connection is closed with an RST (``SO_LINGER`` 0), and new ones are
  reset as soon as they are accepted, until `heal`.

Buffers are bounded: each direction holds at most ``max_chunks`` chunks in flight, after
which the proxy stops reading that side (TCP back-pressure). Taps see every chunk a
client sends, before it is forwarded (the chaos faults watch Kafka requests with them).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

Tap = Callable[[int, bytes], None]
"""Called with (connection id, chunk) for every chunk a client sends, before it is
forwarded; it may switch the proxy's mode (the chunk then obeys the new mode)."""

_CHUNK = 65536


class Mode(enum.Enum):
    NORMAL = "normal"
    LATENCY = "latency"
    BLACKHOLE = "blackhole"
    RESET = "reset"


@dataclass
class _Connection:
    cid: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    tainted: bool = False  # bytes were dropped: the streams can no longer be resumed


def _abort(writer: asyncio.StreamWriter | None) -> None:
    """Close with an RST rather than a FIN: the peer sees 'connection reset'."""
    if writer is None or writer.transport.is_closing():
        return
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class FaultProxy:
    """Relay ``127.0.0.1:listen_port`` to ``upstream_host:upstream_port``.

    Args:
        upstream_host, upstream_port: where connections are relayed to.
        listen_port: the port to listen on (0: any free port; see `port`).
        max_chunks: chunks buffered per direction of a connection before back-pressure.

    Use ``async with FaultProxy(...)`` or `start` / `stop`. Mode changes (`normal`,
    `latency`, `blackhole`, `reset`, `heal`) are plain calls and take effect at once.
    """

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        listen_port: int = 0,
        *,
        max_chunks: int = 64,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._listen_port = listen_port
        self._max_chunks = max_chunks
        self._server: asyncio.Server | None = None
        self._connections: dict[int, _Connection] = {}
        self._handlers: set[asyncio.Task[Any]] = set()
        self._ids = itertools.count(1)
        self._mode = Mode.NORMAL
        self._latency_s = 0.0
        self._taps: list[Tap] = []
        self._changed = asyncio.Event()  # set on every mode change: wakes held writers
        self.accepted = 0
        self.resets = 0
        self.dropped_bytes = 0

    # -- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on 127.0.0.1; idempotent."""
        if self._server is None:
            self._server = await asyncio.start_server(
                self._accept, "127.0.0.1", self._listen_port, reuse_address=True
            )

    async def stop(self) -> None:
        """Stop listening and close every connection; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for conn in list(self._connections.values()):
            await self._close(conn, reset=False)
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=5.0)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> FaultProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        """The port the proxy listens on (after `start`)."""
        if self._server is None:
            return self._listen_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def connections(self) -> int:
        """Connections currently open."""
        return len(self._connections)

    def add_tap(self, tap: Tap) -> None:
        self._taps.append(tap)

    def remove_tap(self, tap: Tap) -> None:
        with contextlib.suppress(ValueError):
            self._taps.remove(tap)

    # -- modes ----------------------------------------------------------------------

    def normal(self) -> None:
        """Relay bytes as they come (connections that lost bytes are reset)."""
        self._set(Mode.NORMAL)
        for conn in list(self._connections.values()):
            if conn.tainted:
                self._reset_soon(conn)

    heal = normal

    def latency(self, ms: float) -> None:
        """Deliver every chunk ``ms`` milliseconds after it arrived, both directions."""
        self._latency_s = ms / 1000
        self._set(Mode.LATENCY)

    def blackhole(self) -> None:
        """Accept and read, drop everything, answer nothing (existing connections too)."""
        self._set(Mode.BLACKHOLE)

    def reset(self) -> None:
        """Reset every connection now, and every new one on accept, until `heal`."""
        self._set(Mode.RESET)
        for conn in list(self._connections.values()):
            self._reset_soon(conn)

    def _set(self, mode: Mode) -> None:
        if mode is not self._mode:
            log.info("proxy %s -> %s:%d: %s", self.address, *self.upstream, mode.value)
        self._mode = mode
        self._changed.set()
        self._changed = asyncio.Event()

    # -- relaying -------------------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        cid = next(self._ids)
        self.accepted += 1
        handler = asyncio.current_task()
        if handler is not None:
            self._handlers.add(handler)
            handler.add_done_callback(self._handlers.discard)
        conn = _Connection(cid, writer)
        if self._mode is Mode.RESET:
            self.resets += 1
            _abort(writer)
            return
        self._connections[cid] = conn
        try:
            if self._mode is Mode.BLACKHOLE:
                # Never reach upstream; read and drop until healed (then reset).
                conn.tainted = True
                await self._drain_into_void(conn, reader)
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.upstream)
            except OSError as exc:
                log.info("proxy %s: upstream unreachable (%r)", self.address, exc)
                _abort(writer)
                return
            conn.upstream = up_writer
            conn.tasks = [
                asyncio.create_task(self._pump(conn, reader, up_writer, tap=True)),
                asyncio.create_task(self._pump(conn, up_reader, writer, tap=False)),
            ]
            # Either direction ending (EOF, error, reset) ends the connection.
            await asyncio.wait(conn.tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await self._close(conn, reset=conn.tainted)

    async def _drain_into_void(self, conn: _Connection, reader: asyncio.StreamReader) -> None:
        while self._mode is Mode.BLACKHOLE:
            read = asyncio.ensure_future(reader.read(_CHUNK))
            changed = asyncio.ensure_future(self._changed.wait())
            done, _ = await asyncio.wait({read, changed}, return_when=asyncio.FIRST_COMPLETED)
            changed.cancel()
            if read not in done:
                read.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await read
                break
            data = read.result()
            if not data:
                return
            self.dropped_bytes += len(data)
        # Healed (or reset): this connection never reached upstream, so reset it.
        self._reset_soon(conn)

    async def _pump(
        self,
        conn: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        tap: bool,
    ) -> None:
        """Copy one direction; chunks go through a bounded queue to a delivering task."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(self._max_chunks)
        deliver = asyncio.create_task(self._deliver(queue, writer))
        try:
            while True:
                try:
                    data = await reader.read(_CHUNK)
                except (ConnectionError, OSError):
                    return
                if not data:
                    return
                if tap:
                    for fn in list(self._taps):
                        fn(conn.cid, data)
                if self._mode is Mode.BLACKHOLE:
                    conn.tainted = True
                    self.dropped_bytes += len(data)
                    continue
                delay = self._latency_s if self._mode is Mode.LATENCY else 0.0
                await queue.put((time.monotonic() + delay, data))
                if deliver.done():
                    return
        except asyncio.CancelledError:
            deliver.cancel()
            raise
        finally:
            if not deliver.done():
                # End of input: let what is queued go out (bounded), then stop.
                with contextlib.suppress(asyncio.QueueFull):
                    queue.put_nowait(None)
                await asyncio.wait({deliver}, timeout=1.0)
                deliver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await deliver

    async def _deliver(
        self,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        writer: asyncio.StreamWriter,
    ) -> None:
        while (item := await queue.get()) is not None:
            due, data = item
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # the injected latency itself
            # A chunk's fate is decided when it is read: one read before a blackhole
            # began is delivered (it was on the wire already), as a tap may rely on.
            try:
                writer.write(data)
                await writer.drain()
            except (ConnectionError, OSError):
                return

    def _reset_soon(self, conn: _Connection) -> None:
        self.resets += 1
        conn.tainted = True
        _abort(conn.client)
        _abort(conn.upstream)
        for task in conn.tasks:
            task.cancel()

    async def _close(self, conn: _Connection, *, reset: bool) -> None:
        if self._connections.pop(conn.cid, None) is None:
            return
        for task in conn.tasks:
            task.cancel()
        for task in conn.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for writer in (conn.client, conn.upstream):
            if writer is None:
                continue
            if reset:
                _abort(writer)
            else:
                writer.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await writer.wait_closed()


__all__ = ["FaultProxy", "Mode", "Tap"]
