"""Network faults between every client and the broker, injected through `sagas.chaos.proxy`.

* ``net_latency``: every chunk, both ways, delayed by 50-400 ms for a few seconds.
* ``net_blackhole``: connections hang (bytes read and dropped) for 2-12 s, then heal;
  connections that lost bytes are reset and the clients reconnect.
* ``net_reset``: every connection is reset (RST), and new ones too, for 0.5-3 s.
* ``net_commit_blackhole``: the proxy watches the Kafka requests clients send; at the
  first EndTxn (API key 26, a transaction commit or abort) it blackholes, either before
  the request reaches the broker (the transaction is never committed) or right after it
  (the broker commits, the client never hears so). The blackhole lasts longer than the
  engine's commit timeout, so the engine meets an indefinite error and must find out
  from Kafka which way the transaction went.

Only the runner's proxy is touched; each fault heals before it returns.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Callable
from dataclasses import dataclass

from sagas.chaos.faults.base import ChaosContext, Fault
from sagas.runtime.loop import DEFAULT_COMMIT_TIMEOUT

END_TXN = 26
"""Kafka API key of EndTxn, the request that commits or aborts a transaction."""

COMMIT_WAIT_S = 30.0
"""How long `net_commit_blackhole` waits for a commit to happen before giving up."""

COMMIT_BLACKHOLE_S = DEFAULT_COMMIT_TIMEOUT.total_seconds() + 5
"""Longer than the engine's commit timeout: the commit must end in doubt."""


@dataclass
class _Stream:
    header: bytearray
    skip: int = 0


class RequestWatcher:
    """Finds the API key of every Kafka request in the client-to-broker byte streams.

    Used as a proxy tap: it sees each connection's bytes in order and follows the
    framing (a 4-byte size, then the request header, which starts with the API key),
    calling ``on_request(connection id, api key)`` as each request starts. It keeps at
    most six bytes per connection.
    """

    def __init__(self, on_request: Callable[[int, int], None]) -> None:
        self._on_request = on_request
        self._streams: dict[int, _Stream] = {}

    def __call__(self, cid: int, data: bytes) -> None:
        stream = self._streams.setdefault(cid, _Stream(bytearray()))
        view = memoryview(data)
        while view:
            if stream.skip:
                n = min(stream.skip, len(view))
                stream.skip -= n
                view = view[n:]
                continue
            need = 6 - len(stream.header)
            stream.header += view[:need]
            view = view[need:]
            if len(stream.header) == 6:
                size, api_key = struct.unpack(">ih", stream.header)
                stream.header.clear()
                stream.skip = max(size - 2, 0)
                self._on_request(cid, api_key)


def _proxy(ctx: ChaosContext, kind: str) -> bool:
    if ctx.proxy is None:
        ctx.log(f"{kind}: no proxy in this run; skipped")
        return False
    return True


async def _hold(ctx: ChaosContext, kind: str, mode: Callable[[], None], seconds: float) -> None:
    """Put the proxy in ``mode`` for ``seconds``, heal it, and count the fault."""
    mode()
    try:
        await asyncio.sleep(seconds)  # the fault's duration
    finally:
        ctx.proxy.heal()
    ctx.faults[kind] += 1


async def net_latency(ctx: ChaosContext) -> None:
    """Delay every chunk both ways for a few seconds."""
    if not _proxy(ctx, "net_latency"):
        return
    ms = ctx.rng.uniform(50, 400)
    seconds = ctx.rng.uniform(2, 8)
    ctx.log(f"net_latency: +{ms:.0f} ms each way for {seconds:.1f}s")
    await _hold(ctx, "net_latency", lambda: ctx.proxy.latency(ms), seconds)


async def net_blackhole(ctx: ChaosContext) -> None:
    """Every connection hangs for a while, then the network heals."""
    if not _proxy(ctx, "net_blackhole"):
        return
    seconds = ctx.rng.uniform(2, 12)
    ctx.log(f"net_blackhole: for {seconds:.1f}s")
    await _hold(ctx, "net_blackhole", ctx.proxy.blackhole, seconds)


async def net_reset(ctx: ChaosContext) -> None:
    """Reset every connection, and refuse new ones, for a short while."""
    if not _proxy(ctx, "net_reset"):
        return
    seconds = ctx.rng.uniform(0.5, 3)
    ctx.log(f"net_reset: connections reset for {seconds:.1f}s")
    await _hold(ctx, "net_reset", ctx.proxy.reset, seconds)


async def net_commit_blackhole(ctx: ChaosContext) -> None:
    """Blackhole at a transaction commit, for longer than the engine's commit timeout."""
    if not _proxy(ctx, "net_commit_blackhole"):
        return
    proxy = ctx.proxy
    # Drop the EndTxn request itself, or let it through and drop the answer.
    after = ctx.rng.random() < 0.5
    seen = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_request(cid: int, api_key: int) -> None:
        if api_key != END_TXN or seen.is_set():
            return
        seen.set()
        if after:
            loop.call_soon(proxy.blackhole)  # runs once this chunk has been forwarded
        else:
            proxy.blackhole()  # this chunk is dropped

    watcher = RequestWatcher(on_request)
    proxy.add_tap(watcher)
    try:
        try:
            await asyncio.wait_for(seen.wait(), COMMIT_WAIT_S)
        except TimeoutError:
            ctx.log(f"net_commit_blackhole: no commit within {COMMIT_WAIT_S:.0f}s; skipped")
            return
        where = "after" if after else "before"
        ctx.log(
            f"net_commit_blackhole: blackhole {where} an EndTxn reached the broker, "
            f"for {COMMIT_BLACKHOLE_S:.0f}s"
        )
        await asyncio.sleep(COMMIT_BLACKHOLE_S)  # the fault's duration
    finally:
        proxy.remove_tap(watcher)
        proxy.heal()
    ctx.faults["net_commit_blackhole"] += 1
    ctx.notes[f"net_commit_blackhole_{where}"] = (
        int(ctx.notes.get(f"net_commit_blackhole_{where}", 0)) + 1
    )


FAULTS: dict[str, Fault] = {
    "net_latency": net_latency,
    "net_blackhole": net_blackhole,
    "net_reset": net_reset,
    "net_commit_blackhole": net_commit_blackhole,
}
