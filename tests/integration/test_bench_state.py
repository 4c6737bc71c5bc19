"""`sagas.bench.state`: its stored sagas are the engine's own, and both figures run."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from sagas.bench.state import applied_offset, measure_restore, rss_mb
from sagas.bench.stored_sagas import PARTITION, SAGA, Templates, fill_store
from sagas.runtime import changelog, store
from sagas.runtime.errors import CorruptChangelog
from sagas.runtime.store import Changes, Store


def _rows(db: Path) -> list[list[Any]]:
    with contextlib.closing(sqlite3.connect(db)) as c:
        return [
            sorted(c.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("instances", "held", "changelog_offsets")
        ]


async def test_templates_cover_the_saga_states_and_decode_as_the_engine_wrote_them() -> None:
    templates = Templates.build()
    states = {row.state for row in templates.rows}
    assert {"COMPLETED", "COMPENSATED", "RUNNING", "COMPENSATING"} <= states
    assert len(templates.picks) == 100
    key, value = templates.record(42)
    row = changelog.instance_of(value)
    assert key == Templates.saga_id(42).encode() == row.saga_id.encode()
    assert Templates.order_id(42) in row.body_text()
    assert changelog.instance_value(row) == value  # re-encoding gives the same bytes


async def test_catch_up_rows_skip_the_body_yet_equal_the_decoded_ones() -> None:
    templates = Templates.build()
    for i in range(len(templates.values)):
        _, value = templates.record(templates.picks.index(i))
        full = changelog.instance_of(value)
        assert changelog.instance_row(value) == store.row(full)
        # Another member order (not `instance_value`'s) is decoded whole, to the same row.
        doc = json.loads(value)
        reordered = json.dumps({"body": doc["body"], "row": doc["row"], "kind": "instance"})
        assert changelog.instance_row(reordered.encode()) == store.row(full)
        # A "body" member inside the row is not taken for the body.
        compact = {"separators": (",", ":")}
        odd = json.dumps(
            {"kind": "instance", "row": {**doc["row"], "x": {"a": 1, "body": {}}}}, **compact
        )
        odd = odd[:-1] + ',"body":' + json.dumps(doc["body"], **compact) + "}"
        with pytest.raises(CorruptChangelog, match="'x'"):  # decoded whole: `x` is no column
            changelog.instance_row(odd.encode())


async def test_fill_store_writes_exactly_what_catch_up_writes(tmp_path: Path) -> None:
    templates = Templates.build()
    n = 230
    bulk = tmp_path / "bulk.db"
    await fill_store(bulk, n, templates, chunk=64)
    applied = tmp_path / "applied.db"
    store = await Store.open(applied)
    try:
        rows = [templates.row(i) for i in range(n)]
        await store.apply(Changes(SAGA, PARTITION, rows, next_changelog_offset=0))
    finally:
        await store.close()
    instances, held, offsets = _rows(bulk)
    assert len(instances) == n
    assert not held
    assert len(offsets) == 1
    assert _rows(bulk) == _rows(applied)


@pytest.mark.timeout(400)
async def test_restore_and_rss_run_an_engine_process(kafka_bootstrap: str, tmp_path: Path) -> None:
    restore = await measure_restore(300, kafka_bootstrap, tmp_path / "restore", deadline_s=300)
    assert restore.records == 300
    assert restore.catch_up_s is not None
    assert 0 < restore.catch_up_s < restore.total_s
    db = tmp_path / "restore" / "engine-0.sqlite3"
    assert applied_offset(db) is not None
    assert (applied_offset(db) or 0) >= 300
    with contextlib.closing(sqlite3.connect(db)) as c:
        assert c.execute("SELECT COUNT(*) FROM instances").fetchone() == (300,)

    rss = await rss_mb(300, kafka_bootstrap, tmp_path / "rss", work=20, deadline_s=300)
    assert 20 < rss < 2000
