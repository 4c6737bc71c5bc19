"""The changelog without a broker: records turned into store changes (`changes_of`,
`apply_record`), held messages and their tombstones, malformed records, `catch_up`
from an in-memory changelog partition into a real SQLite store, and an engine that
meets a corrupt record while taking a unit."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from sagas import decide
from sagas.runtime import changelog, topics
from sagas.runtime.batch import stored_row
from sagas.runtime.engine import Engine
from sagas.runtime.errors import CorruptChangelog, RuntimeFailure
from sagas.runtime.store import Changes, Held, Store, StoredInstance, row
from sagas.runtime.transport.memory import MemoryBroker, MemoryTransport
from sagas.runtime.transport.records import TP, OutRecord
from services.app import app as examples
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from tests.memory_system import DEADLINE, settings
from tests.unit.saga_fixtures import T0, order_saga, placed

SAGA = "order_fulfilment"
TOPIC = topics.changelog(SAGA)
TP0 = TP(TOPIC, 0)
TIMEOUT = timedelta(seconds=5)

REJECTED = CorruptChangelog
"""What the read model's follower catches around `apply_record` to reject a record
(sagas/ops/readmodel/follower.py) instead of stopping, and what stops catch-up."""


def stored(saga_id: str, seq: int, state: str = "RUNNING", partition: int = 0) -> StoredInstance:
    """An instance row whose body says which record it came from (``seq``)."""
    return StoredInstance(
        saga_name=SAGA,
        saga_id=saga_id,
        partition=partition,
        version=1,
        state=state,
        updated_at=f"2025-01-01T00:00:{seq:02d}.000000Z",
        body={"saga_id": saga_id, "state": state, "history": [{"seq": seq}]},
        started_at="2025-01-01T00:00:00.000000Z",
        ended_at="2025-01-01T00:01:00.000000Z" if state == "COMPLETED" else None,
        next_due=None if state == "COMPLETED" else "2025-01-01T01:00:00.000000Z",
    )


def held(saga_id: str, n: int = 1) -> Held:
    return Held(saga_id, 0, "2025-01-01T00:05:00.000000Z", [{"id": f"m-{i}"} for i in range(n)])


def instance_record(inst: StoredInstance) -> tuple[bytes, bytes]:
    return inst.saga_id.encode(), changelog.instance_value(inst)


def held_record(h: Held) -> tuple[bytes, bytes]:
    return changelog.held_key(h.saga_id), changelog.held_value(h)


def released_record(saga_id: str) -> tuple[bytes, None]:
    return changelog.held_key(saga_id), None


# -- changes_of ---------------------------------------------------------------------------


def test_instance_records_become_store_rows_with_the_body_text_as_is() -> None:
    a, b = stored("order:a", 1), stored("order:b", 2, "COMPLETED")
    changes = changelog.changes_of(SAGA, 3, [instance_record(a), instance_record(b)])
    assert (changes.saga_name, changes.partition) == (SAGA, 3)
    assert changes.instance_rows == [row(a), row(b)]
    assert changes.instances == []
    assert changes.held == []
    assert changes.released == []
    assert changes.next_changelog_offset is None


def test_the_last_record_of_a_key_wins_and_moves_to_its_offset() -> None:
    a1, b1, a2 = stored("order:a", 1), stored("order:b", 2), stored("order:a", 3, "COMPLETED")
    records = [instance_record(a1), instance_record(b1), instance_record(a2)]
    assert changelog.changes_of(SAGA, 0, records).instance_rows == [row(b1), row(a2)]


def test_a_record_not_in_the_writers_shape_gives_the_same_row() -> None:
    # The fast path copies the body's text; a record written another way (members in
    # another order) is decoded whole and must give the same row.
    inst = stored("order:a", 1)
    fast = changelog.instance_value(inst)
    doc = json.loads(fast)
    other = json.dumps({"body": doc["body"], "row": doc["row"], "kind": "instance"}).encode()
    assert changelog.changes_of(SAGA, 0, [(b"order:a", other)]).instance_rows == [row(inst)]
    assert changelog.instance_row(fast) == changelog.instance_row(other)


def test_a_saga_id_that_spells_the_body_member_does_not_cut_the_record_there() -> None:
    inst = stored('order:,"body":{"x":1}', 1)
    changes = changelog.changes_of(SAGA, 0, [instance_record(inst)])
    assert changes.instance_rows == [row(inst)]


def test_held_messages_become_held_rows_and_their_tombstones_releases() -> None:
    x, y = held("order:x"), held("order:y", 2)
    changes = changelog.changes_of(
        SAGA, 0, [held_record(x), held_record(y), released_record("order:x")]
    )
    assert changes.held == [y]
    assert changes.released == ["order:x"]
    assert changes.instance_rows == []


def test_held_messages_after_their_tombstone_are_held_again() -> None:
    z = held("order:z", 3)
    changes = changelog.changes_of(SAGA, 0, [released_record("order:z"), held_record(z)])
    assert changes.held == [z]
    assert changes.released == []


def test_held_messages_and_the_instance_of_one_saga_id_are_two_keys() -> None:
    inst, h = stored("order:a", 1), held("order:a")
    assert changelog.held_key("order:a") == b"held\x00order:a"
    changes = changelog.changes_of(SAGA, 0, [held_record(h), instance_record(inst)])
    assert changes.held == [h]
    assert changes.instance_rows == [row(inst)]


def test_instance_tombstones_and_keyless_records_are_ignored() -> None:
    a = stored("order:a", 1)
    records = [instance_record(a), (b"order:a", None), (None, changelog.instance_value(a))]
    changes = changelog.changes_of(SAGA, 0, records)
    assert changes.instance_rows == [row(a)]
    assert changelog.changes_of(SAGA, 0, [(b"order:b", None), (None, None)]) == Changes(SAGA, 0)


# -- apply_record -------------------------------------------------------------------------


def test_apply_record_decodes_instances_in_offset_order() -> None:
    a1, a2 = stored("order:a", 1), stored("order:a", 2, "COMPLETED")
    changes = Changes(SAGA, 0)
    for key, value in [instance_record(a1), (b"order:a", None), instance_record(a2), (None, b"")]:
        changelog.apply_record(changes, key, value)
    assert changes.instances == [a1, a2]  # applied in order: the later row wins
    assert [i.body for i in changes.instances] == [a1.body, a2.body]


def test_apply_record_keeps_the_last_held_set_of_a_saga() -> None:
    x1, x2, y = held("order:x"), held("order:x", 2), held("order:y")
    changes = Changes(SAGA, 0)
    for key, value in [held_record(x1), held_record(y), held_record(x2)]:
        changelog.apply_record(changes, key, value)
    assert changes.held == [y, x2]
    changelog.apply_record(changes, *released_record("order:y"))
    assert changes.held == [x2]
    assert changes.released == ["order:y"]


async def test_apply_record_holds_messages_that_follow_their_tombstone(tmp_path: Path) -> None:
    # `Store.apply` deletes the released after it inserts the held: a release left in
    # the changes would delete the set held after it.
    z = held("order:z")
    changes = Changes(SAGA, 0)
    changelog.apply_record(changes, *released_record("order:z"))
    changelog.apply_record(changes, *held_record(z))
    assert (changes.held, changes.released) == ([z], [])
    async with await Store.open(tmp_path / "store.db") as store:
        await store.apply(changes)
        assert await store.held(SAGA, "order:z") == z


async def test_the_last_held_record_of_a_saga_wins_in_apply_record_and_changes_of(
    tmp_path: Path,
) -> None:
    z1, z2 = held("order:z"), held("order:z", 2)
    sequences = {
        "released": [held_record(z1), released_record("order:z")],
        "held again": [held_record(z1), released_record("order:z"), held_record(z2)],
        "released again": [released_record("order:z"), held_record(z2), released_record("order:z")],
    }
    async with await Store.open(tmp_path / "store.db") as store:
        for name, records in sequences.items():
            await store.apply(Changes(SAGA, 0, held=[z1]))  # held before the slice
            expected = None if name.startswith("released") else z2
            applied = Changes(SAGA, 0)
            for key, value in records:
                changelog.apply_record(applied, key, value)
            sliced = changelog.changes_of(SAGA, 0, records)
            assert (applied.held, applied.released) == (sliced.held, sliced.released), name
            assert len(applied.held) + len(applied.released) == 1, name
            for changes in (applied, sliced):
                await store.apply(changes)
                assert await store.held(SAGA, "order:z") == expected, name


# -- malformed records --------------------------------------------------------------------

_ROW = json.loads(changelog.instance_value(stored("order:a", 1)))["row"]


def _instance_json(**doc: object) -> bytes:
    return json.dumps({"kind": "instance", "row": _ROW, "body": {}, **doc}).encode()


MALFORMED = {
    "not JSON": b'{"kind":"instance",',
    "not UTF-8": b"\xff\xfe",
    "not UTF-8 in the body": changelog.instance_value(stored("order:a", 1)).replace(
        b'"seq"', b'"\xff"'
    ),
    "not an object": b"[1,2]",
    "JSON null": b"null",
    "a string": b'"instance"',
    "no kind": json.dumps({"row": _ROW, "body": {}}).encode(),
    "an unknown kind": _instance_json(kind="snapshot"),
    "the held kind": _instance_json(kind="held"),
    "no row": b'{"kind":"instance","body":{}}',
    "a row that is a list": _instance_json(row=list(_ROW.values())),
    "a row missing columns": b'{"kind":"instance","row":{"saga_id":"a"},"body":{}}',
    "a row with an unknown column": _instance_json(row={**_ROW, "colour": "red"}),
    "a version that is text": _instance_json(row={**_ROW, "version": "1"}),
    "a version that is a boolean": _instance_json(row={**_ROW, "version": True}),
    "a state that is null": _instance_json(row={**_ROW, "state": None}),
    "a next_due that is an object": _instance_json(row={**_ROW, "next_due": {}}),
    "no body": json.dumps({"kind": "instance", "row": _ROW}).encode(),
    "a body that is null": _instance_json(body=None),
    "a body that is a list": _instance_json(body=[]),
    "nested too deeply": b"[" * 100_000,
    "a body nested too deeply": _instance_json(body="x").replace(
        b'"x"', b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    ),
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_instance_record_raises_one_typed_error_naming_its_key(value: bytes) -> None:
    with pytest.raises(CorruptChangelog) as sliced:
        changelog.changes_of(SAGA, 0, [instance_record(stored("order:b", 1)), (b"order:a", value)])
    changes = Changes(SAGA, 0)
    with pytest.raises(CorruptChangelog) as applied:
        changelog.apply_record(changes, b"order:a", value)
    assert changes == Changes(SAGA, 0)  # left as it was
    for error in (sliced.value, applied.value):
        assert not error.retryable
        assert isinstance(error, RuntimeFailure)
        assert error.key == b"order:a"
        assert error.why
        assert "order:a" in str(error)
    with pytest.raises(CorruptChangelog):
        changelog.instance_row(value)
    with pytest.raises(CorruptChangelog):
        changelog.instance_of(value)


def test_the_error_says_what_is_wrong() -> None:
    def why(value: bytes) -> str:
        with pytest.raises(CorruptChangelog) as error:
            changelog.apply_record(Changes(SAGA, 0), b"order:a", value)
        return error.value.why

    assert why(MALFORMED["not JSON"]).startswith("not JSON")
    assert why(MALFORMED["nested too deeply"]) == "JSON nested too deeply to decode"
    assert why(MALFORMED["no row"]) == "no 'row' member"
    assert why(MALFORMED["an unknown kind"]) == "kind 'snapshot' where 'instance' was expected"
    assert why(MALFORMED["a body that is null"]) == "body is null, not an object"
    assert why(MALFORMED["a version that is text"]) == "row column 'version' is a string"
    assert why(MALFORMED["JSON null"]) == "the value is null, not an object"


def test_a_record_of_an_unknown_kind_is_refused_on_the_fast_path_too() -> None:
    # In the writer's shape (the body copied, not decoded) but of another kind.
    value = changelog.instance_value(stored("order:a", 1)).replace(b'"instance"', b'"snapshot"')
    with pytest.raises(CorruptChangelog, match="kind 'snapshot'"):
        changelog.changes_of(SAGA, 0, [(b"order:a", value)])


def test_a_body_of_null_is_refused_by_both_decoders() -> None:
    # `changes_of` used to store the text "null", `apply_record` to fail on it untyped.
    value = MALFORMED["a body that is null"]
    with pytest.raises(CorruptChangelog, match="body is null"):
        changelog.changes_of(SAGA, 0, [(b"order:a", value)])
    with pytest.raises(CorruptChangelog, match="body is null"):
        changelog.apply_record(Changes(SAGA, 0), b"order:a", value)


def _held_json(**fields: object) -> bytes:
    h = {"saga_id": "order:x", "partition": 0, "expires_at": "2025-01-01T00:05:00Z"}
    return json.dumps({"kind": "held", "held": {**h, "messages": [], **fields}}).encode()


MALFORMED_HELD = {
    "not JSON": b"{",
    "a string": b'"held"',
    "no held member": b'{"kind":"held"}',
    "held missing fields": b'{"kind":"held","held":{"saga_id":"x"}}',
    "the instance kind": json.dumps({"kind": "instance", "held": {}}).encode(),
    "held that is a list": json.dumps({"kind": "held", "held": []}).encode(),
    "another saga's held messages": _held_json(saga_id="order:y"),
    "messages that are an object": _held_json(messages={}),
    "a partition that is text": _held_json(partition="0"),
    "nested too deeply": b"[" * 100_000,
}


@pytest.mark.parametrize("value", MALFORMED_HELD.values(), ids=MALFORMED_HELD.keys())
def test_a_malformed_held_record_raises_one_typed_error_naming_its_key(value: bytes) -> None:
    key = changelog.held_key("order:x")
    assert changelog.changes_of(SAGA, 0, [(key, _held_json())]).held  # the good one holds
    with pytest.raises(CorruptChangelog) as sliced:
        changelog.changes_of(SAGA, 0, [(key, value)])
    changes = Changes(SAGA, 0, held=[held("order:x")])
    with pytest.raises(CorruptChangelog) as applied:
        changelog.apply_record(changes, key, value)
    assert changes == Changes(SAGA, 0, held=[held("order:x")])  # left as it was
    assert sliced.value.key == applied.value.key == key


def test_a_held_key_that_is_not_utf8_is_refused() -> None:
    key = changelog.HELD_PREFIX + b"\xff"
    for value in (None, _held_json()):
        with pytest.raises(CorruptChangelog, match="not UTF-8"):
            changelog.changes_of(SAGA, 0, [(key, value)])
        with pytest.raises(CorruptChangelog, match="not UTF-8"):
            changelog.apply_record(Changes(SAGA, 0), key, value)


def test_a_malformed_record_followed_by_its_key_in_the_slice_is_superseded() -> None:
    # Only the last record of a key is decoded, as compaction would keep only it.
    a = stored("order:a", 1)
    changes = changelog.changes_of(SAGA, 0, [(b"order:a", b"{"), instance_record(a)])
    assert changes.instance_rows == [row(a)]


# -- catch_up -----------------------------------------------------------------------------


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    async with await Store.open(tmp_path / "store.db") as opened:
        yield opened


@pytest.fixture
async def transport() -> MemoryTransport:
    transport = MemoryTransport()
    await transport.ensure_topics(topics.saga_topics(SAGA, 2), 1)
    return transport


async def write(
    transport: MemoryTransport,
    records: Sequence[tuple[bytes, bytes | None]],
    *,
    partition: int = 0,
    commit: bool = True,
) -> None:
    """Write ``records`` to the changelog in one transaction, as the engine does."""
    producer = transport.transactional_producer("engine", request_timeout=TIMEOUT)
    await producer.start()
    await producer.begin()
    for key, value in records:
        await producer.send(OutRecord(TOPIC, value, key=key, partition=partition))
    await (producer.commit() if commit else producer.abort())
    await producer.stop()


class Writes:
    """`catch_up`'s ``apply``: the store's own, and what each call brought."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[Changes] = []

    async def __call__(self, changes: Changes) -> None:
        self.calls.append(changes)
        await self.store.apply(changes)


async def test_catch_up_brings_the_store_to_the_changelog_end(
    store: Store, transport: MemoryTransport
) -> None:
    a1, a2, b = stored("order:a", 1), stored("order:a", 2, "COMPLETED"), stored("order:b", 3)
    x, y = held("order:x"), held("order:y", 2)
    real = decide(order_saga(), None, placed("o-9"), T0).instance
    assert real is not None
    c = stored_row(real, 0)
    await write(transport, [instance_record(a1), held_record(x)])
    await write(transport, [instance_record(a2), instance_record(b), released_record("order:x")])
    await write(transport, [instance_record(stored("order:lost", 4))], commit=False)
    await write(transport, [held_record(y), instance_record(c)])
    await write(transport, [instance_record(stored("order:other", 5, partition=1))], partition=1)
    reader = transport.partition_reader()
    end = await reader.end_offset(TP0)
    assert end == 12  # 7 committed records, 1 aborted, 3 commit markers and 1 abort marker

    assert await changelog.catch_up(reader, store, SAGA, TP0, chunk=3) == 7

    assert await store.get(SAGA, "order:a") == a2.body
    assert await store.get(SAGA, "order:b") == b.body
    assert await store.get(SAGA, c.saga_id) == json.loads(c.body_text())
    assert await store.get(SAGA, "order:lost") is None  # aborted
    assert await store.get(SAGA, "order:other") is None  # another partition
    assert await store.held(SAGA, "order:x") is None
    assert await store.held(SAGA, "order:y") == y
    assert await store.unfinished_count(SAGA, 0) == 2  # b and the real one
    assert await store.next_changelog_offset(SAGA, 0) == end
    assert await store.next_changelog_offset(SAGA, 1) == 0


async def test_catch_up_writes_each_slice_with_the_offset_after_it(
    store: Store, transport: MemoryTransport
) -> None:
    a = [stored(f"order:{i}", i) for i in range(5)]
    for inst in a:
        transport.broker.publish(
            OutRecord(TOPIC, changelog.instance_value(inst), inst.saga_id.encode(), partition=0)
        )
    writes = Writes(store)
    reader = transport.partition_reader()
    assert await changelog.catch_up(reader, store, SAGA, TP0, writes, chunk=2) == 5
    assert [len(w.instance_rows) for w in writes.calls] == [2, 2, 1, 0]
    assert [w.next_changelog_offset for w in writes.calls] == [2, 4, 5, 5]
    assert await store.counts_by_state(SAGA) == {"RUNNING": 5}


async def test_catching_up_again_reads_only_what_came_since(
    store: Store, transport: MemoryTransport
) -> None:
    await write(transport, [instance_record(stored("order:a", 1))])
    reader = transport.partition_reader()
    assert await changelog.catch_up(reader, store, SAGA, TP0) == 1
    writes = Writes(store)
    assert await changelog.catch_up(reader, store, SAGA, TP0, writes) == 0
    assert writes.calls == []  # nothing read, nothing written

    b = stored("order:b", 2)
    await write(transport, [instance_record(b)])
    assert await changelog.catch_up(reader, store, SAGA, TP0, writes) == 1
    assert [w.instance_rows for w in writes.calls] == [[row(b)], []]
    assert await store.next_changelog_offset(SAGA, 0) == 4


async def test_catch_up_of_an_empty_partition_reads_and_writes_nothing(
    store: Store, transport: MemoryTransport
) -> None:
    writes = Writes(store)
    assert await changelog.catch_up(transport.partition_reader(), store, SAGA, TP0, writes) == 0
    assert writes.calls == []
    assert await store.next_changelog_offset(SAGA, 0) == 0


async def test_catch_up_stops_before_an_open_transaction(
    store: Store, transport: MemoryTransport
) -> None:
    a1, a2 = stored("order:a", 1), stored("order:a", 2, "COMPLETED")
    await write(transport, [instance_record(a1)])
    producer = transport.transactional_producer("open", request_timeout=TIMEOUT)
    await producer.start()
    await producer.begin()
    await producer.send(OutRecord(TOPIC, changelog.instance_value(a2), b"order:a", partition=0))
    reader = transport.partition_reader()
    assert await changelog.catch_up(reader, store, SAGA, TP0) == 1
    assert await store.get(SAGA, "order:a") == a1.body
    assert await store.next_changelog_offset(SAGA, 0) == 2  # the open transaction's start

    await producer.commit()
    await producer.stop()
    assert await changelog.catch_up(reader, store, SAGA, TP0) == 1
    assert await store.get(SAGA, "order:a") == a2.body
    assert await store.next_changelog_offset(SAGA, 0) == 4


async def test_a_malformed_record_stops_catch_up_after_the_slices_before_it(
    store: Store, transport: MemoryTransport
) -> None:
    a, b, c = stored("order:a", 1), stored("order:b", 2), stored("order:c", 3)
    await write(
        transport,
        [instance_record(a), instance_record(b), (b"order:bad", b"{"), instance_record(c)],
    )
    reader = transport.partition_reader()
    with pytest.raises(CorruptChangelog) as error:
        await changelog.catch_up(reader, store, SAGA, TP0, chunk=2)
    found = error.value
    assert (found.topic, found.partition, found.offset, found.key) == (TOPIC, 0, 2, b"order:bad")
    assert str(found).startswith(f"the changelog record at {TOPIC}[0]@2 (key b'order:bad')")
    assert isinstance(found.__cause__, json.JSONDecodeError)
    assert await store.get(SAGA, "order:b") == b.body
    assert await store.get(SAGA, "order:c") is None
    assert await store.next_changelog_offset(SAGA, 0) == 2  # the failing slice's start
    # Never skipped: catching up again stops at the same record.
    with pytest.raises(CorruptChangelog) as again:
        await changelog.catch_up(reader, store, SAGA, TP0, chunk=2)
    assert again.value.offset == 2
    assert await store.next_changelog_offset(SAGA, 0) == 2


# -- the engine -----------------------------------------------------------------------------


async def test_an_engine_taking_a_unit_with_a_corrupt_changelog_stops_with_the_error(
    tmp_path: Path,
) -> None:
    """Taking the unit fails (not retried: retrying reads the same record), and `run`
    raises the typed error itself, naming the record, instead of going on without the
    unit or with its state lost."""
    broker = MemoryBroker()
    name = ORDER_FULFILMENT.name
    good = stored("order:good", 1)
    await MemoryTransport(broker).ensure_topics(topics.saga_topics(name, 3), 1)
    for value in (changelog.instance_value(good), b'{"kind":"instance","row":'):
        broker.publish(OutRecord(topics.changelog(name), value, b"order:x", partition=1))
    codec = examples.codec()
    try:
        async with await Store.open(tmp_path / "engine.db") as store:
            engine = Engine(
                [ORDER_FULFILMENT],
                settings(tmp_path),
                transport=MemoryTransport(broker),
                codec=codec,
                classes=examples.classes,
                store=store,
            )
            async with asyncio.timeout(DEADLINE):
                with pytest.raises(CorruptChangelog) as error:
                    await engine.run()
    finally:
        codec.close()
    assert (error.value.topic, error.value.partition, error.value.offset) == (
        topics.changelog(name),
        1,
        1,
    )
    assert "not JSON" in str(error.value)
