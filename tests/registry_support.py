"""A fake schema registry that notes every request made from the event loop's thread.

The registry client's retries sleep, so the project asks it off the event loop; a test
proves that by going through `WatchedRegistry.transport` and checking ``on_the_loop``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx

from sagas.contracts.fake_registry import FakeRegistry


@dataclass
class WatchedRegistry:
    """``registry``, reached through `transport`; create it on the event loop's thread
    (in the test coroutine)."""

    registry: FakeRegistry = field(default_factory=FakeRegistry)
    loop_thread: int = field(default_factory=threading.get_ident)
    on_the_loop: list[str] = field(default_factory=list)
    """The paths asked from the event loop's thread."""

    def transport(self) -> httpx.MockTransport:
        def handle(request: httpx.Request) -> httpx.Response:
            if threading.get_ident() == self.loop_thread:
                self.on_the_loop.append(request.url.path)
            return self.registry.handle(request)

        return httpx.MockTransport(handle)
