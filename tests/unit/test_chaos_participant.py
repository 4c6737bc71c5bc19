"""A participant's faults as a wrapper (`sagas.chaos.participant`), without a broker.

Each fault does what docs/configuration.md says, through the seam `ParticipantService`
offers (`ProcessorFactory`); the chaos entry point refuses a bad or unknown variable in
one line; the local system starts a service with faults through that entry point, and
one without through ``sagas serve``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from sagas.chaos import service as chaos_service
from sagas.chaos.participant import CRASH_STATUS, FaultyProcessor, ServiceFaults, faulty
from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.dev.processes import Supervisor
from sagas.dev.system import CHAOS_SERVICE_PREFIX, LocalSystem, SystemLayout
from sagas.participant.processor import Incoming, Processor
from sagas.participant.service import ParticipantService, prepare_store
from sagas.participant.settings import ServiceSettings
from sagas.participant.store import Store
from sagas.participant.testing import command_record, decode
from services import inventory
from services.app import app as examples
from services.inventory import stock_of
from services.messages.inventory import ReserveStock, StockItem, StockReserved

PREFIX = str(ServiceFaults.model_config.get("env_prefix", ""))


class Crashed(Exception):
    """What the test's crash raises instead of ending the process."""


def crash(applied: int) -> None:
    raise Crashed(applied)


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


@pytest.fixture(autouse=True)
def no_faults_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ServiceFaults.model_fields:
        monkeypatch.delenv(f"{PREFIX}{name}".upper(), raising=False)


async def open_faulty(
    path: Path, codec: Codec, faults: ServiceFaults, on_crash: Callable[[int], None] = crash
) -> Processor:
    """The processor `ParticipantService` would build with ``faulty(faults)``."""
    participant = inventory.participant()
    store = await prepare_store(Store(path), participant, None)
    build = faulty(faults, on_crash)
    return build(participant, store, codec, topic_prefix="", telemetry=None)


def reserve(codec: Codec, n: int) -> Incoming:
    command = ReserveStock(order_id=f"o-{n}", items=(StockItem(sku="SKU-1", quantity=1),))
    return command_record(codec, command, command_id=f"c-{n}")


async def test_the_failure_fault_fails_retryably_and_applies_nothing(
    tmp_path: Path, codec: Codec
) -> None:
    p = await open_faulty(tmp_path / "db.sqlite3", codec, ServiceFaults(failure_rate=1.0))
    try:
        [out] = await p.command(reserve(codec, 1))
        failed = decode(codec, out).payload
        assert isinstance(failed, CommandFailed)
        assert failed.retryable
        assert failed.reason == "InjectedFault: injected fault"
        assert await stock_of(p.store.db, "SKU-1") == (100, 0)
        # Nothing stored: the engine's retry, without the fault, is applied.
        plain = Processor(p.participant, p.store, codec)
        [out] = await plain.command(reserve(codec, 1))
        assert isinstance(decode(codec, out).payload, StockReserved)
        assert await stock_of(p.store.db, "SKU-1") == (99, 1)
    finally:
        await p.store.close()


async def test_the_failures_are_drawn_from_the_seed(tmp_path: Path, codec: Codec) -> None:
    faults = ServiceFaults(failure_rate=0.5, seed=7)
    p = await open_faulty(tmp_path / "db.sqlite3", codec, faults)
    try:
        outs = [await p.command(reserve(codec, n)) for n in range(20)]
        failed = [isinstance(decode(codec, out).payload, CommandFailed) for [out] in outs]
        draws = random.Random(7)
        assert failed == [draws.random() < 0.5 for _ in range(20)]
        assert 0 < sum(failed) < 20
        assert await stock_of(p.store.db, "SKU-1") == (100 - (20 - sum(failed)), 20 - sum(failed))
    finally:
        await p.store.close()


async def test_the_crash_comes_after_the_commit_of_the_nth_and_before_its_replies(
    tmp_path: Path, codec: Codec
) -> None:
    p = await open_faulty(tmp_path / "db.sqlite3", codec, ServiceFaults(crash_after=2))
    try:
        [first] = await p.command(reserve(codec, 1))
        with pytest.raises(Crashed) as crashed:
            await p.batch([reserve(codec, 2), reserve(codec, 3)])  # the 2nd is in here
        assert crashed.value.args == (3,)  # the whole batch was committed ...
        assert await stock_of(p.store.db, "SKU-1") == (97, 3)
        # ... and its replies never returned: delivered again, the batch gets its stored
        # replies and nothing is applied twice.
        plain = Processor(p.participant, p.store, codec)
        again = await plain.batch([reserve(codec, 2), reserve(codec, 3)])
        assert [type(decode(codec, out).payload) for [out] in again] == [StockReserved] * 2
        assert await plain.command(reserve(codec, 1)) == [first]
        assert await stock_of(p.store.db, "SKU-1") == (97, 3)
    finally:
        await p.store.close()


async def test_the_crash_ignores_what_applies_nothing(tmp_path: Path, codec: Codec) -> None:
    counts: list[int] = []
    p = await open_faulty(
        tmp_path / "db.sqlite3", codec, ServiceFaults(crash_after=1), counts.append
    )
    try:
        await p.command(reserve(codec, 1))
        assert counts == [1]
        await p.command(reserve(codec, 1))  # a duplicate: its stored reply, nothing applied
        assert counts == [1]
    finally:
        await p.store.close()


async def test_the_latency_delays_each_command(tmp_path: Path, codec: Codec) -> None:
    latency = timedelta(milliseconds=40)
    p = await open_faulty(tmp_path / "db.sqlite3", codec, ServiceFaults(latency=latency))
    try:
        began = time.monotonic()
        outs = await p.batch([reserve(codec, n) for n in range(3)])
        took = time.monotonic() - began
        assert [type(decode(codec, out).payload) for [out] in outs] == [StockReserved] * 3
        assert took >= 3 * latency.total_seconds()
    finally:
        await p.store.close()


async def test_the_service_builds_its_processor_through_the_factory(
    tmp_path: Path, codec: Codec
) -> None:
    settings = ServiceSettings(data_dir=tmp_path, web_port=0)
    plain = ParticipantService(inventory.participant(), settings, codec=codec)
    assert type(plain.processor) is Processor
    faults = ServiceFaults(crash_after=5)
    wrapped = ParticipantService(
        inventory.participant(), settings, codec=codec, processor_factory=faulty(faults)
    )
    assert isinstance(wrapped.processor, FaultyProcessor)
    assert wrapped.processor.faults is faults


def test_the_faults_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceFaults() == ServiceFaults(
        failure_rate=0.0, latency=timedelta(0), crash_after=None, seed=0
    )
    monkeypatch.setenv("SAGAS_CHAOS_SERVICE_LATENCY", "0.02")
    monkeypatch.setenv("SAGAS_CHAOS_SERVICE_FAILURE_RATE", "0.25")
    monkeypatch.setenv("SAGAS_CHAOS_SERVICE_CRASH_AFTER", "40")
    monkeypatch.setenv("SAGAS_CHAOS_SERVICE_SEED", "3")
    assert ServiceFaults() == ServiceFaults(
        failure_rate=0.25, latency=timedelta(milliseconds=20), crash_after=40, seed=3
    )
    assert CRASH_STATUS == 70


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SAGAS_CHAOS_SERVICE_FAILURE_RATE", "1.5"),
        ("SAGAS_CHAOS_SERVICE_LATENCY", "-1"),
        ("SAGAS_CHAOS_SERVICE_CRASH_AFTER", "0"),
        ("SAGAS_CHAOS_SERVICE_SEED", "x"),
    ],
)
def test_a_bad_fault_stops_the_entry_point_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    assert chaos_service.main(["inventory", "--app", "services.app:app"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"error: invalid setting {variable}=")


def test_an_unknown_fault_stops_the_entry_point(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SAGAS_CHAOS_SERVICE_LATNCY", "0.5")
    assert chaos_service.main(["inventory", "--app", "services.app:app"]) == 1
    assert capsys.readouterr().err == (
        "error: SAGAS_CHAOS_SERVICE_LATNCY: no such fault (see docs/configuration.md)\n"
    )


def test_the_local_system_starts_a_faulty_service_through_the_entry_point(
    tmp_path: Path,
) -> None:
    assert CHAOS_SERVICE_PREFIX == PREFIX
    system = LocalSystem(SystemLayout("127.0.0.1:1", tmp_path), Supervisor(tmp_path / "logs"))
    plain = system.service_spec("inventory")
    assert plain.argv == ("python", "-m", "sagas.ops.cli", "serve", "inventory")
    assert not [name for name in plain.env if name.startswith(PREFIX)]
    slow = system.service_spec("inventory", faults={"latency": "0.02", "crash_after": "9"})
    assert slow.argv == ("python", "-m", "sagas.chaos.service", "inventory")
    assert {k: v for k, v in slow.env.items() if k.startswith(PREFIX)} == {
        "SAGAS_CHAOS_SERVICE_LATENCY": "0.02",
        "SAGAS_CHAOS_SERVICE_CRASH_AFTER": "9",
    }
