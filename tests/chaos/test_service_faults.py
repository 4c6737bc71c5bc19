"""A participant's faults, as processes on the real broker: the chaos entry point.

``python -m sagas.chaos.service inventory`` (what `LocalSystem.service_spec` starts when
faults are asked for) with ``crash_after`` exits with status 70 once that many commands
were applied, the batch holding the n-th committed and its replies never sent; started
again as ``sagas serve`` it answers every command and applies none twice. With a
failure rate of 1, every command is answered with a retryable ``CommandFailed`` and
nothing is applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiosqlite
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from sagas.chaos.participant import CRASH_STATUS
from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope
from sagas.dev.processes import ManagedProcess, Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.participant.testing import Wire, new_prefix
from services.app import app as examples
from services.inventory import stock_of
from services.messages.inventory import ReserveStock, StockItem, StockReserved
from tests.conftest import MakeTopic

pytestmark = [pytest.mark.kafka, pytest.mark.chaos, pytest.mark.timeout(240)]

COMMANDS = 40
CRASH_AFTER = 10
STOCK = 1000
SEED = {"stock": {"SKU-1": STOCK}}


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


def reserve(i: int) -> ReserveStock:
    return ReserveStock(order_id=f"o-{i}", items=(StockItem(sku="SKU-1", quantity=1),))


async def send_all(wire: Wire, topic: str, count: int) -> set[str]:
    ids = {f"c-{i}" for i in range(count)}
    for i in range(count):
        await wire.send(topic, reserve(i), f"c-{i}", f"order:o-{i}")
    return ids


async def exited(proc: ManagedProcess, within: float = 120) -> int:
    """The exit status of ``proc``, once it ended on its own."""
    async with asyncio.timeout(within):
        # a child process of ours: nothing to await but its end (polled)
        while (code := proc.exit_code()) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
    return code


async def records_in(bootstrap: str, topic: str) -> int:
    """How many records the one partition of ``topic`` holds."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, 0)])
    finally:
        await consumer.stop()
    return sum(ends.values())


async def store_state(path: Path) -> tuple[tuple[int, int], set[str]]:
    """The service's stock of SKU-1 and the commands it recorded as processed."""
    async with aiosqlite.connect(path) as db:
        stock = await stock_of(db, "SKU-1")
        async with db.execute("SELECT message_id FROM processed") as cursor:
            processed = {str(row[0]) for row in await cursor.fetchall()}
    return stock, processed


def answered(replies: list[Envelope]) -> set[str]:
    return {r.in_reply_to for r in replies if r.in_reply_to is not None}


async def test_the_crash_fault_exits_after_the_commit_and_before_the_replies(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    replies = await make_topic("replies", partitions=1)
    layout = SystemLayout(kafka_bootstrap, tmp_path, prefix, partitions=1)
    with Supervisor(tmp_path / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        spec = system.service_spec("inventory", SEED, faults={"crash_after": str(CRASH_AFTER)})
        crashing = system.start(spec)
        async with Wire(kafka_bootstrap, codec, replies) as wire:
            ids = await send_all(wire, f"{prefix}inventory.commands", COMMANDS)
            code = await exited(crashing)
            log = crashing.log.read_text(errors="replace")
            assert code == CRASH_STATUS, log[-3000:]
            assert "fault injection: crashing after" in log
            # The process is gone: what it sent is all there is.
            sent = await records_in(kafka_bootstrap, replies)
            before = answered(await wire.replies_until(lambda got: len(got) >= sent))
            (available, reserved), processed = await store_state(layout.service_db("inventory"))
            assert reserved >= CRASH_AFTER  # the n-th command's batch was committed ...
            assert (available, reserved) == (STOCK - len(processed), len(processed))
            assert before < processed  # ... and its replies never left
            # Started again without the fault: every command answered, none applied twice.
            system.start(system.service_spec("inventory", SEED))
            after = await wire.replies_until(lambda got: answered(got) == ids, within=120)
        supervisor.stop_all()
        assert supervisor.unclean_stops() == {}
    assert all(isinstance(r.payload, StockReserved) for r in after)
    assert await store_state(layout.service_db("inventory")) == (
        (STOCK - COMMANDS, COMMANDS),
        ids,
    )


async def test_the_failure_fault_answers_every_command_retryably(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    replies = await make_topic("replies", partitions=1)
    layout = SystemLayout(kafka_bootstrap, tmp_path, prefix, partitions=1)
    with Supervisor(tmp_path / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        failing = system.start(system.service_spec("inventory", SEED, faults={"failure_rate": "1"}))
        async with Wire(kafka_bootstrap, codec, replies) as wire:
            ids = await send_all(wire, f"{prefix}inventory.commands", 5)
            got = await wire.replies_until(lambda got: answered(got) == ids, within=120)
        assert supervisor.stop(failing.spec.name) == 0, supervisor.log_tail("inventory")
    failures = [r.payload for r in got]
    assert all(isinstance(f, CommandFailed) and f.retryable for f in failures), failures
    assert await store_state(layout.service_db("inventory")) == ((STOCK, 0), set())
