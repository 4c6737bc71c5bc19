"""The network faults drive the proxy and always heal; the request watcher follows framing."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sagas.chaos.faults import network
from sagas.chaos.faults.network import RequestWatcher
from sagas.chaos.proxy import FaultProxy, Mode
from tests.chaos.proxied import network_context


def _request(api_key: int, body: bytes) -> bytes:
    payload = struct.pack(">hhi", api_key, 0, 7) + body
    return struct.pack(">i", len(payload)) + payload


def _watch(stream: bytes, cut: int) -> list[tuple[int, int]]:
    """Feed ``stream`` in pieces of ``cut`` bytes on two connections, interleaved."""
    seen: list[tuple[int, int]] = []
    watcher = RequestWatcher(lambda cid, key: seen.append((cid, key)))
    for i in range(0, len(stream), cut):
        watcher(1, stream[i : i + cut])
        watcher(2, stream[i : i + cut])  # connections are followed separately
    return seen


def test_request_watcher_finds_every_request_however_the_stream_is_cut() -> None:
    stream = b"".join(
        [_request(0, b"x" * 5000), _request(26, b"end"), _request(3, b""), _request(26, b"")]
    )
    for cut in (1, 2, 5, 7, 100, len(stream)):
        seen = _watch(stream, cut)
        assert [k for c, k in seen if c == 1] == [0, 26, 3, 26], cut
        assert [k for c, k in seen if c == 2] == [0, 26, 3, 26], cut


@pytest.fixture
async def proxy() -> AsyncIterator[FaultProxy]:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    async with FaultProxy("127.0.0.1", int(server.sockets[0].getsockname()[1])) as p:
        yield p
    server.close()
    await server.wait_closed()


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("kind", "mode"),
    [("net_latency", Mode.LATENCY), ("net_blackhole", Mode.BLACKHOLE), ("net_reset", Mode.RESET)],
)
async def test_each_fault_sets_its_mode_then_heals(
    proxy: FaultProxy, tmp_path: Path, kind: str, mode: Mode
) -> None:
    ctx = network_context(proxy, tmp_path, seed=8)
    seen: set[Mode] = set()
    fault = asyncio.create_task(network.FAULTS[kind](ctx))
    while not fault.done():
        seen.add(proxy.mode)
        await asyncio.sleep(0.05)  # sampling the mode while the fault runs
    await fault
    assert mode in seen
    assert proxy.mode is Mode.NORMAL
    assert ctx.faults == {kind: 1}
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    writer.write(b"healed")
    assert await asyncio.wait_for(reader.readexactly(6), 5) == b"healed"
    writer.close()


async def test_faults_without_a_proxy_are_skipped(tmp_path: Path, proxy: FaultProxy) -> None:
    ctx = network_context(proxy, tmp_path, seed=1)
    ctx.proxy = None
    for fault in network.FAULTS.values():
        await asyncio.wait_for(fault(ctx), 1)
    assert not ctx.faults
