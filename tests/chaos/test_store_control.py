"""The chaos control file and what an engine does with it, on a real SQLite store."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sagas.chaos.control import ChaosControl, Control, ControlError, read_control, write_control
from sagas.chaos.store import FaultyStore
from sagas.runtime.errors import StoreUnwritable
from sagas.runtime.store import Changes, StoredInstance

pytestmark = pytest.mark.chaos

T0 = datetime(2030, 1, 1, tzinfo=UTC)


def row(saga_id: str, size: int = 10) -> StoredInstance:
    return StoredInstance(
        saga_name="s",
        saga_id=saga_id,
        partition=0,
        version=1,
        state="RUNNING",
        updated_at="2030-01-01T00:00:00.000000Z",
        body={"pad": "x" * size},
    )


def test_write_control_merges_and_replaces_atomically(tmp_path: Path) -> None:
    path = tmp_path / "c" / "engine-1.json"
    assert read_control(path) == Control()  # no file: no fault
    assert write_control(path, store="full") == Control(0.0, "full")
    assert write_control(path, clock_offset_s=-30) == Control(-30.0, "full")
    assert read_control(path) == Control(-30.0, "full")
    assert [p.name for p in path.parent.iterdir()] == ["engine-1.json"]  # no temp left


@pytest.mark.parametrize(
    "fields",
    [{"store": "broken"}, {"clock_offset_s": "soon"}, {"clock_offset_s": True}, {"speed": 2}],
)
def test_write_control_refuses_bad_fields(tmp_path: Path, fields: dict[str, object]) -> None:
    with pytest.raises(ControlError):
        write_control(tmp_path / "engine.json", **fields)
    assert not (tmp_path / "engine.json").exists()


async def test_the_engine_applies_the_file_to_its_clock_and_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "engine.json"
    async with await FaultyStore.open(tmp_path / "engine.db") as store:
        control = ChaosControl(path, store, source=lambda: T0)
        await control.poll_once()
        assert control.now() == T0
        await store.apply(Changes("s", 0, instances=[row("a")]))

        write_control(path, clock_offset_s=-3600.0, store="readonly")
        await control.poll_once()
        assert control.now() == T0 - timedelta(hours=1)
        with pytest.raises(StoreUnwritable, match="readonly"):
            await store.apply(Changes("s", 0, instances=[row("b")]))
        assert await store.get("s", "a") is not None  # reads go on

        write_control(path, clock_offset_s=12.5, store="full")
        await control.poll_once()
        assert control.now() == T0 + timedelta(seconds=12.5)
        with pytest.raises(StoreUnwritable, match="full"):
            await store.apply(Changes("s", 0, instances=[row(f"c{i}", 5000) for i in range(5)]))

        path.write_text("{not json")  # a bad file: logged once, the last control stays
        with caplog.at_level(logging.ERROR, logger="sagas.chaos.control"):
            await control.poll_once()
            await control.poll_once()
        assert caplog.text.count("chaos control file ignored") == 1
        assert control.applied == Control(12.5, "full")

        with pytest.raises(ControlError):  # the runner is told too
            write_control(path, store="ok")
        path.unlink()  # no file: no fault
        await control.poll_once()
        assert control.now() == T0
        await store.apply(Changes("s", 0, instances=[row(f"d{i}", 5000) for i in range(5)]))
        assert await store.get("s", "d4") is not None
