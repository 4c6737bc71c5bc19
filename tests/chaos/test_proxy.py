"""The fault proxy against a plain TCP echo server: every mode, switched at run time."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

import pytest

from sagas.chaos.proxy import FaultProxy, Mode


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """An echo server on 127.0.0.1 (answers every chunk with the same bytes)."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def proxy(echo_port: int) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", echo_port) as p:
        yield p


async def _connect(proxy: FaultProxy) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", proxy.port)


async def _roundtrip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes, wait_s: float
) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), wait_s)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_normal_mode_relays_both_ways(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    payload = bytes(range(256)) * 2000  # 512 KB: several chunks, through bounded buffers
    writer.write(payload)
    await writer.drain()
    echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 10)
    assert echoed == payload
    assert proxy.mode is Mode.NORMAL
    assert proxy.connections == 1
    await _close(writer)


async def test_latency_is_added_in_each_direction(proxy: FaultProxy) -> None:
    reader, writer = await _connect(proxy)
    began = time.monotonic()
    await _roundtrip(reader, writer, b"ping", 5)
    baseline = time.monotonic() - began
    proxy.latency(150)
    began = time.monotonic()
    assert await _roundtrip(reader, writer, b"slow", 5) == b"slow"
    delayed = time.monotonic() - began
    # 150 ms to the server and 150 ms back.
    assert delayed >= 0.3
    assert delayed < 0.3 + baseline + 1.0
    proxy.heal()
    began = time.monotonic()
    await _roundtrip(reader, writer, b"fast", 5)
    assert time.monotonic() - began < 0.25
    await _close(writer)


async def test_latency_does_not_throttle_a_burst(proxy: FaultProxy) -> None:
    proxy.latency(200)
    reader, writer = await _connect(proxy)
    began = time.monotonic()
    for i in range(20):  # 20 small writes: delivered ~200 ms after each, not 20 x 200 ms
        writer.write(b"%03d" % i)
        await writer.drain()
    data = await asyncio.wait_for(reader.readexactly(60), 10)
    assert data == b"".join(b"%03d" % i for i in range(20))
    assert 0.4 <= time.monotonic() - began < 2.5
    await _close(writer)


async def test_blackhole_hangs_existing_and_new_connections_then_heals(
    proxy: FaultProxy,
) -> None:
    reader, writer = await _connect(proxy)
    await _roundtrip(reader, writer, b"before", 5)
    proxy.blackhole()
    with pytest.raises(TimeoutError):
        await _roundtrip(reader, writer, b"lost", 0.5)
    # A new connection is accepted, then nothing is ever answered.
    new_reader, new_writer = await _connect(proxy)
    with pytest.raises(TimeoutError):
        await _roundtrip(new_reader, new_writer, b"void", 0.5)
    assert proxy.dropped_bytes >= len(b"lost") + len(b"void")
    proxy.heal()
    # Connections that lost bytes are reset (their streams have holes) ...
    for old in (reader, new_reader):
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError)):
            await asyncio.wait_for(old.readexactly(1), 5)
    # ... and a fresh connection works again.
    fresh_reader, fresh_writer = await _connect(proxy)
    assert await _roundtrip(fresh_reader, fresh_writer, b"after", 5) == b"after"
    for w in (writer, new_writer, fresh_writer):
        await _close(w)


async def test_reset_closes_with_rst_and_refuses_new_connections_until_healed(
    proxy: FaultProxy,
) -> None:
    reader, writer = await _connect(proxy)
    await _roundtrip(reader, writer, b"hello", 5)
    proxy.reset()
    with pytest.raises(ConnectionResetError):
        # An RST, not an orderly FIN: reading reports a reset (EOF would return b"").
        await asyncio.wait_for(reader.read(1), 5)
    new_reader, new_writer = await _connect(proxy)
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(new_reader.read(1), 5)
    assert proxy.resets >= 2
    proxy.heal()
    fresh_reader, fresh_writer = await _connect(proxy)
    assert await _roundtrip(fresh_reader, fresh_writer, b"again", 5) == b"again"
    for w in (writer, new_writer, fresh_writer):
        await _close(w)


async def test_taps_see_client_bytes_before_they_are_forwarded(proxy: FaultProxy) -> None:
    seen: list[bytes] = []

    def tap(cid: int, data: bytes) -> None:
        seen.append(data)
        if b"STOP" in data:
            proxy.blackhole()  # this very chunk obeys the new mode: it is dropped

    proxy.add_tap(tap)
    reader, writer = await _connect(proxy)
    assert await _roundtrip(reader, writer, b"go", 5) == b"go"
    with pytest.raises(TimeoutError):
        await _roundtrip(reader, writer, b"STOP", 0.5)
    assert b"".join(seen) == b"goSTOP"
    proxy.remove_tap(tap)
    await _close(writer)


async def test_stop_closes_every_connection(echo_port: int) -> None:
    proxy = FaultProxy("127.0.0.1", echo_port)
    await proxy.start()
    readers = []
    writers = []
    for _ in range(3):
        r, w = await _connect(proxy)
        await _roundtrip(r, w, b"x", 5)
        readers.append(r)
        writers.append(w)
    proxy.blackhole()
    r, w = await _connect(proxy)  # one held in the blackhole too
    readers.append(r)
    writers.append(w)
    port = proxy.port
    await asyncio.wait_for(proxy.stop(), 10)
    assert proxy.connections == 0
    for r in readers:
        assert await asyncio.wait_for(r.read(), 5) == b""
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection("127.0.0.1", port)
    for w in writers:
        await _close(w)
