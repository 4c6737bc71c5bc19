"""The changelog without a broker: records turned into store changes (`changes_of`,
`apply_record`), held messages and their tombstones, malformed records, and `catch_up`
from an in-memory changelog partition into a real SQLite store."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from sagas import decide
from sagas.runtime import changelog, topics
from sagas.runtime.batch import stored_row
from sagas.runtime.store import Changes, Held, Store, StoredInstance, row
from sagas.runtime.transport.memory import MemoryTransport
from sagas.runtime.transport.records import TP, OutRecord
from tests.unit.saga_fixtures import T0, order_saga, placed

SAGA = "order_fulfilment"
TOPIC = topics.changelog(SAGA)
TP0 = TP(TOPIC, 0)
TIMEOUT = timedelta(seconds=5)

REJECTED = (ValueError, KeyError, TypeError, AttributeError)
"""What the read model's follower catches around `apply_record` to reject a record
(sagas/ops/readmodel/follower.py) instead of stopping."""


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


@pytest.mark.xfail(
    strict=True,
    reason="apply_record leaves the saga id in `released` when held messages follow "
    "their tombstone, and Store.apply deletes after inserting: the held set is lost",
)
async def test_apply_record_holds_messages_that_follow_their_tombstone(tmp_path: Path) -> None:
    z = held("order:z")
    changes = Changes(SAGA, 0)
    changelog.apply_record(changes, *released_record("order:z"))
    changelog.apply_record(changes, *held_record(z))
    async with await Store.open(tmp_path / "store.db") as store:
        await store.apply(changes)
        assert await store.held(SAGA, "order:z") == z


# -- malformed records --------------------------------------------------------------------

_ROW = json.loads(changelog.instance_value(stored("order:a", 1)))["row"]

MALFORMED = {
    "not JSON": b'{"kind":"instance",',
    "not UTF-8": b"\xff\xfe",
    "not an object": b"[1,2]",
    "JSON null": b"null",
    "no row": b'{"kind":"instance","body":{}}',
    "a row missing columns": b'{"kind":"instance","row":{"saga_id":"a"},"body":{}}',
    "a row with an unknown column": json.dumps(
        {"kind": "instance", "row": {**_ROW, "colour": "red"}, "body": {}}
    ).encode(),
    "no body": json.dumps({"kind": "instance", "row": _ROW}).encode(),
}


@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_instance_record_raises_what_the_read_model_rejects(value: bytes) -> None:
    with pytest.raises(REJECTED):
        changelog.changes_of(SAGA, 0, [(b"order:a", value)])
    with pytest.raises(REJECTED):
        changelog.apply_record(Changes(SAGA, 0), b"order:a", value)


@pytest.mark.parametrize(
    "value",
    [b"{", b'{"kind":"held"}', b'{"kind":"held","held":{"saga_id":"x"}}', b'"held"'],
    ids=["not JSON", "no held member", "held missing fields", "a string"],
)
def test_a_malformed_held_record_raises_what_the_read_model_rejects(value: bytes) -> None:
    key = changelog.held_key("order:x")
    with pytest.raises(REJECTED):
        changelog.changes_of(SAGA, 0, [(key, value)])
    with pytest.raises(REJECTED):
        changelog.apply_record(Changes(SAGA, 0), key, value)


@pytest.mark.xfail(
    strict=True,
    raises=RecursionError,
    reason="the stdlib decoder (apply_record; changes_of after orjson refuses) raises "
    "RecursionError, which the read model does not catch",
)
def test_a_deeply_nested_record_raises_what_the_read_model_rejects() -> None:
    with pytest.raises(REJECTED):
        changelog.apply_record(Changes(SAGA, 0), b"order:a", b"[" * 100_000)


@pytest.mark.xfail(
    strict=True,
    reason="no kind is checked: a record of an unknown kind with a row and a body is "
    "taken for an instance",
)
def test_a_record_of_an_unknown_kind_is_refused() -> None:
    value = json.dumps({"kind": "snapshot", "row": _ROW, "body": {}}).encode()
    with pytest.raises(REJECTED):
        changelog.changes_of(SAGA, 0, [(b"order:a", value)])


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
    # A raw decoding error, not a `RuntimeFailure`: an engine taking the partition stops
    # with it, naming neither the topic nor the offset.
    with pytest.raises(json.JSONDecodeError):
        await changelog.catch_up(reader, store, SAGA, TP0, chunk=2)
    assert await store.get(SAGA, "order:b") == b.body
    assert await store.get(SAGA, "order:c") is None
    assert await store.next_changelog_offset(SAGA, 0) == 2  # the failing slice's start
