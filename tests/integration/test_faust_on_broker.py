"""A faust-streaming agent runs on the pinned broker: it consumes one topic, produces to another.

faust drives aiokafka through its internals, so this is the test that catches an
aiokafka or broker upgrade breaking the participant services.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from sagas.dev.faust_check import faust_round_trip
from tests.conftest import MakeTopic


def _faust_workers_alive() -> list[int]:
    """Children of this process that run the faust worker (Linux /proc)."""
    pids: list[int] = []
    for children in Path(f"/proc/{os.getpid()}/task").glob("*/children"):
        pids.extend(int(p) for p in children.read_text().split())
    alive = []
    for pid in pids:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"sagas.dev.faust_worker" in cmdline:
            alive.append(pid)
    return alive


@pytest.mark.kafka
@pytest.mark.parametrize("exactly_once", [False, True], ids=["at_least_once", "exactly_once"])
async def test_agent_consumes_and_produces(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, exactly_once: bool
) -> None:
    source = await make_topic("faust-in")
    sink = await make_topic("faust-out")
    records = [(f"order-{i}".encode(), f"placed {i}".encode()) for i in range(10)]

    async with asyncio.timeout(90):
        got = await faust_round_trip(
            kafka_bootstrap, source, sink, records, tmp_path, exactly_once=exactly_once
        )

    assert got == [(key, value.upper()) for key, value in records]
    assert _faust_workers_alive() == []
