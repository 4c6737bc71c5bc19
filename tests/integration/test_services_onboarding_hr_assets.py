"""The hr and assets services on the real broker: hires publish EmployeeHired and follow
how onboarding ends (also over HTTP, as ``python -m services.hr``); provisioning a
laptop publishes LaptopDelivered on its own, once."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.dev.broker import free_port
from sagas.participant import Outbound, ParticipantService
from sagas.participant.testing import Wire, new_prefix, read_all, running, until
from services import assets, hr
from services.app import app as examples
from services.messages.assets import (
    LaptopDelivered,
    LaptopProvisioned,
    LaptopReclaimed,
    LaptopUnavailable,
    ProvisionLaptop,
    ReclaimLaptop,
)
from services.messages.hr import EmployeeHired, EmployeeOnboarded, OnboardingCancelled, Role
from tests.conftest import MakeTopic
from tests.integration.test_services_onboarding import assert_duplicate_identical, exchange

pytestmark = pytest.mark.kafka

HIRE = {"full_name": "Ada Lovelace", "role": "ENGINEER", "start_date": "2030-02-01"}


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


async def test_provisioning_delivers_the_laptop_once(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    replies = await make_topic("replies")
    async with (
        running(assets.participant(), kafka_bootstrap, tmp_path, codec, prefix) as service,
        Wire(kafka_bootstrap, codec, replies) as wire,
    ):
        first = "employee:e-1:provision_laptop:1"
        # Employees sit on different partitions, read in any order: e-2 asks only once
        # e-1 has its laptop, so the asset tags are known.
        got = await exchange(
            service,
            wire,
            [
                (ProvisionLaptop(employee_id="e-1", model="X1-CARBON"), first),
                (ProvisionLaptop(employee_id="e-1", model="X1-CARBON"), first),
            ],
        )
        got |= await exchange(
            service,
            wire,
            [
                (ProvisionLaptop(employee_id="e-2", model="X1-CARBON"), "employee:e-2:p:1"),
                (ProvisionLaptop(employee_id="e-3", model="MBP-14-M4"), "employee:e-3:p:1"),
            ],
        )
        assert got[first] == LaptopProvisioned(
            employee_id="e-1", asset_tag="X1-CARBON-0001", model="X1-CARBON"
        )
        assert_duplicate_identical(wire, first)
        assert got["employee:e-3:p:1"] == LaptopUnavailable(employee_id="e-3", model="MBP-14-M4")

        records = await read_all(kafka_bootstrap, f"{prefix}assets.events", 2)
        events = [codec.decode(list(r.headers), r.value) for r in records]
        assert sorted(
            (r.key, e.payload.asset_tag) for r, e in zip(records, events, strict=True)
        ) == [
            (b"e-1", "X1-CARBON-0001"),
            (b"e-2", "X1-CARBON-0002"),
        ]
        assert all(isinstance(e.payload, LaptopDelivered) for e in events)
        assert all(e.id.startswith("laptop:asg-") and e.id.endswith(":delivered") for e in events)
        async with service.store.db.execute(
            "SELECT employee_id, delivery FROM assignments ORDER BY employee_id"
        ) as cursor:
            assert list(await cursor.fetchall()) == [("e-1", "PUBLISHED"), ("e-2", "PUBLISHED")]

        reclaim = ReclaimLaptop(employee_id="e-1", asset_tag="X1-CARBON-0001")
        undo = "employee:e-1:provision_laptop:compensate:1"
        got = await exchange(service, wire, [(reclaim, undo), (reclaim, undo)])
        assert got[undo] == LaptopReclaimed(employee_id="e-1", asset_tag="X1-CARBON-0001")
        assert_duplicate_identical(wire, undo)
        assert await assets.pool_of(service.store.db, "X1-CARBON") == (9, 1)
        assert await service.invariants() == []


async def test_commands_answered_at_once_deliver_each_laptop_once(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from sagas.participant.testing import command_envelope, incoming

    prefix = new_prefix()
    replies = await make_topic("replies")
    async with running(assets.participant(), kafka_bootstrap, tmp_path, codec, prefix) as service:
        topic = service.commands_topic
        records = [
            incoming(
                codec,
                command_envelope(
                    ProvisionLaptop(employee_id=f"e-{i}", model="X1-CARBON"),
                    command_id=f"employee:e-{i}:provision_laptop:1",
                    saga_id=f"employee:e-{i}",
                    reply_to=replies,
                ),
                topic=topic,
                offset=100 + i,
            )
            for i in range(4)
        ]
        # As faust's agents do: several commands answered at the same time, each followed
        # by the outbox hook, which publishes every delivery still pending.
        await asyncio.gather(*(service.process(topic, r) for r in records))
        events_topic = f"{prefix}assets.events"
        partitions = service.settings.topic_partitions
        consumer = AIOKafkaConsumer(events_topic, bootstrap_servers=kafka_bootstrap)
        await consumer.start()
        try:
            parts = [TopicPartition(events_topic, p) for p in range(partitions)]
            published = sum((await consumer.end_offsets(parts)).values())
        finally:
            await consumer.stop()
        assert published == 4  # one LaptopDelivered per laptop, none twice


async def test_a_delivery_left_unpublished_is_published_on_start(
    kafka_bootstrap: str, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    # as if the process died after the command's commit, before the event went out
    async with (
        running(assets.participant(), kafka_bootstrap, tmp_path, codec, prefix) as service,
        service.store.transaction() as db,
    ):
        await db.execute(
            "UPDATE laptops SET status = 'ASSIGNED', employee_id = 'e-9' "
            "WHERE asset_tag = 'MBA-13-0001'"
        )
        await db.execute(
            "INSERT INTO assignments VALUES "
            "('asg-x', 'e-9', 'MBA-13-0001', 'ASSIGNED', 'PENDING', '', '')"
        )
    async with running(assets.participant(), kafka_bootstrap, tmp_path, codec, prefix):
        [record] = await read_all(kafka_bootstrap, f"{prefix}assets.events", 1)
        envelope = codec.decode(list(record.headers), record.value)
        assert envelope.id == "laptop:asg-x:delivered"
        assert isinstance(envelope.payload, LaptopDelivered)
        assert envelope.payload.asset_tag == "MBA-13-0001"


async def _publish_end(
    service: ParticipantService, topic: str, codec: Codec, end: Record, key: str
) -> None:
    now = datetime.now(UTC)
    envelope = Envelope(id=f"{key}:end", type=end.SCHEMA, source="/sagas/t", time=now, payload=end)
    headers, value = codec.encode(envelope)
    await service.send([Outbound(topic=topic, key=key.encode(), value=value, headers=headers)])


async def test_hires_are_published_and_follow_their_end(
    kafka_bootstrap: str, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    events = f"{prefix}hr.events"
    async with running(hr.participant(), kafka_bootstrap, tmp_path, codec, prefix) as svc:
        one = await hr.hire(svc, {**HIRE, "employee_id": "e-1"})
        two = await hr.hire(svc, {**HIRE, "employee_id": "e-2", "laptop_model": "X1-CARBON"})
        assert (one.role, one.start_date) == (Role.ENGINEER, date(2030, 2, 1))

        placed = await read_all(kafka_bootstrap, events, 2)
        envelopes = [codec.decode(list(r.headers), r.value) for r in placed]
        assert {e.id for e in envelopes} == {"employee:e-1:hired", "employee:e-2:hired"}
        assert {r.key for r in placed} == {b"e-1", b"e-2"}
        by_id = {e.payload.employee_id: e.payload for e in envelopes}
        assert isinstance(by_id["e-2"], EmployeeHired)
        assert by_id["e-2"].laptop_model == "X1-CARBON"

        now = datetime.now(UTC)
        done = EmployeeOnboarded(
            employee_id=one.employee_id,
            username="ada.lovelace2",
            email="ada.lovelace2@example.com",
            asset_tag="MBP-16-0001",
            onboarded_at=now,
        )
        cancelled = OnboardingCancelled(
            employee_id=two.employee_id, reason="no laptop", cancelled_at=now
        )
        await _publish_end(svc, events, codec, done, "e-1")
        await _publish_end(svc, events, codec, cancelled, "e-2")

        async def ended() -> bool:
            return (
                await hr.status_of(svc.store.db, "e-1") == "ONBOARDED"
                and await hr.status_of(svc.store.db, "e-2") == "CANCELLED"
            )

        await until(ended)
        assert await svc.invariants() == []


async def test_hr_runs_as_a_program_and_takes_hires_over_http(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SERVICE_DATA_DIR": str(tmp_path),
        "SAGAS_TOPIC_PREFIX": new_prefix(),
        "SERVICE_WEB_PORT": str(port),
    }
    log_path = tmp_path / "hr.log"
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.hr",
            env=env,
            stdout=log,
            stderr=log,
            stdin=asyncio.subprocess.DEVNULL,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

                async def healthy() -> bool:
                    assert proc.returncode is None, log_path.read_text()
                    try:
                        return (await client.get("/health")).status_code == 200
                    except httpx.TransportError:
                        return False

                await until(healthy)
                created = await client.post("/hires", json={**HIRE, "employee_id": "e-7"})
                assert created.status_code == 201, created.text
                assert created.json() == {"employee_id": "e-7", "status": "HIRED"}
                again = await client.post("/hires", json={**HIRE, "employee_id": "e-7"})
                assert again.status_code == 400
                bad = await client.post("/hires", json={**HIRE, "role": "PIRATE"})
                assert bad.status_code == 400
                assert (await client.get("/invariants")).json() == {"ok": True, "broken": []}
        finally:
            if proc.returncode is None:
                proc.send_signal(signal.SIGTERM)
            async with asyncio.timeout(30):
                code = await proc.wait()
    assert code == 0, log_path.read_text()[-2000:]
