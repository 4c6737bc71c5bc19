"""An engine refuses to start without the definition versions its running sagas need."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sagas.errors import ConfigurationError
from sagas.runtime.engine import Engine, by_name
from sagas.runtime.store import Changes, Store, StoredInstance
from sagas.runtime.transport.kafka import KafkaTransport
from sagas.settings import EngineSettings
from services.app import app as examples
from tests.integration.engine_support import two_step_saga


def _row(saga_id: str, version: int, ended: str | None) -> StoredInstance:
    return StoredInstance(
        saga_name="versioned",
        saga_id=saga_id,
        partition=0,
        version=version,
        state="COMPLETED" if ended else "RUNNING",
        updated_at="2026-01-01T00:00:00.000000Z",
        body={},
        ended_at=ended,
    )


async def test_removing_a_version_with_running_sagas_is_refused(tmp_path: Path) -> None:
    v1 = two_step_saga("versioned")
    v2 = dataclasses.replace(v1, version=2)
    store = await Store.open(tmp_path / "engine.db")
    codec = examples.codec()
    try:
        await store.apply(
            Changes("versioned", 0, instances=[_row("a", 1, None), _row("b", 2, None)])
        )
        settings = EngineSettings(engine_db=tmp_path / "engine.db")
        engine = Engine(
            [v2],
            settings,
            transport=KafkaTransport("127.0.0.1:1", settings.topic_prefix),
            codec=codec,
            classes=examples.classes,
            store=store,
        )
        with pytest.raises(
            ConfigurationError, match=r"'versioned': versions \[1\] still have running"
        ):
            await engine.prepare()
    finally:
        await store.close()
        codec.close()


async def test_ended_sagas_do_not_pin_their_version(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "engine.db")
    try:
        await store.apply(
            Changes("versioned", 0, instances=[_row("a", 1, "2026-01-02T00:00:00.000000Z")])
        )
        assert await store.unfinished_versions("versioned") == set()
    finally:
        await store.close()


def test_two_definitions_of_one_version_clash() -> None:
    saga = two_step_saga("versioned")
    with pytest.raises(ConfigurationError, match="given twice"):
        by_name([saga, saga])
    table = by_name([saga, dataclasses.replace(saga, version=2)])
    assert sorted(table["versioned"]) == [1, 2]
