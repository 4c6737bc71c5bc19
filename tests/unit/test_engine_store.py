"""The engine's SQLite store: a batch's rows come back exactly, and are updated in place."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from sagas.runtime.store import Changes, Store, StoredInstance

AWKWARD = {
    "saga_id": "order:o-1",
    "quote": 'say "hi"\\ then \\"',
    "accents": "déjà vu, ß, 中文",
    "astral": "\U0001f600 \U00010348",
    "control": "line\nbreak\ttab\x00nul\x7f",
    "number": 12345678901234567890,
    "float": 0.1,
    "nested": {"list": [None, True, False, -0.0]},
}


def instance(saga_id: str, state: str, body: dict[str, object]) -> StoredInstance:
    return StoredInstance(
        saga_name="order_fulfilment",
        saga_id=saga_id,
        partition=2,
        version=3,
        state=state,
        updated_at="2030-01-01T00:00:01.000000Z",
        body=body,
        started_at="2030-01-01T00:00:00.000000Z",
        ended_at=None,
        next_due="2030-01-01T00:00:30.000000Z" if state == "RUNNING" else None,
    )


async def test_rows_of_a_batch_are_stored_exactly_and_updated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "engine.db"
    store = await Store.open(path)
    try:
        first = [instance(f"order:o-{i}", "RUNNING", {**AWKWARD, "i": i}) for i in range(3)]
        await store.apply(Changes("order_fulfilment", 2, instances=first, next_changelog_offset=7))
        later = instance("order:o-1", "COMPLETED", {**AWKWARD, "i": 1, "done": True})
        await store.apply(
            Changes("order_fulfilment", 2, instances=[later], next_changelog_offset=9)
        )
        assert await store.get("order_fulfilment", "order:o-0") == {**AWKWARD, "i": 0}
        assert await store.get("order_fulfilment", "order:o-1") == {**AWKWARD, "i": 1, "done": True}
        assert await store.next_changelog_offset("order_fulfilment", 2) == 9
        assert await store.counts_by_state("order_fulfilment") == {"RUNNING": 2, "COMPLETED": 1}
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT saga_id, partition, version, state, started_at, updated_at, ended_at,"
            " next_due, body FROM instances ORDER BY saga_id"
        ).fetchall()
    assert [r[:8] for r in rows] == [
        ("order:o-0", 2, 3, "RUNNING", "2030-01-01T00:00:00.000000Z",
         "2030-01-01T00:00:01.000000Z", None, "2030-01-01T00:00:30.000000Z"),
        ("order:o-1", 2, 3, "COMPLETED", "2030-01-01T00:00:00.000000Z",
         "2030-01-01T00:00:01.000000Z", None, None),
        ("order:o-2", 2, 3, "RUNNING", "2030-01-01T00:00:00.000000Z",
         "2030-01-01T00:00:01.000000Z", None, "2030-01-01T00:00:30.000000Z"),
    ]  # fmt: skip
    # The body's text is the very text encoded for the batch, byte for byte.
    assert rows[0][8] == first[0].body_text()
    assert rows[1][8] == later.body_text()
    assert json.loads(rows[2][8])["astral"] == AWKWARD["astral"]
