"""Fuzz the decoder: whatever arrives, the outcome is a typed message or a ContractError.

Four properties share the load (10,500 examples in all): random values with valid
headers, mutations of valid messages (truncation, bit flips, insertions, swapped schema
ids, oversize), random header sets, and both at once.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagas.contracts.codec import Codec
from sagas.contracts.errors import MessageError
from sagas.contracts.headers import Headers
from sagas.contracts.record import Envelope, Record
from sagas.contracts.registry import EmbeddedRegistry
from services.app import app as _examples_app
from services.app import app as examples
from tests.unit.contracts.strategies import sample

ALL_MESSAGES = tuple(cls for _, cls in _examples_app.classes.items())

LIMIT = 2048
FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
NAMES = [
    b"ce_id",
    b"ce_type",
    b"ce_source",
    b"ce_specversion",
    b"ce_time",
    b"content-type",
    b"saga_id",
    b"reply_to",
    b"in_reply_to",
    b"traceparent",
    b"tracestate",
    b"other",
]


@functools.cache
def codec_and_pool() -> tuple[Codec, list[tuple[Headers, bytes]]]:
    """A codec with a small size limit, and two valid messages of every type."""
    tree = examples.schema_tree
    small = Codec(
        EmbeddedRegistry.from_tree(tree), tree.current, examples.classes, max_payload_bytes=LIMIT
    )
    messages = []
    for seed in range(2):
        for cls in ALL_MESSAGES:
            payload = sample(cls, seed)
            sent = Envelope(
                id=f"m{seed}",
                type=cls.SCHEMA,
                source="/fuzz",
                time=datetime(2024, 1, 1, tzinfo=UTC),
                payload=payload,
                saga_id="s",
            )
            messages.append(small.encode(sent))
    return small, messages


def outcome(codec: Codec, headers: list[tuple[str, bytes | None]], value: bytes | None) -> str:
    """Decode; anything but a valid message or a MessageError fails the test.

    (Other ContractErrors, e.g. RegistryError, cannot happen with the embedded registry.)
    """
    try:
        envelope = codec.decode(headers, value, topic="fuzz", partition=0, offset=1)
    except MessageError as exc:
        reason, located, dlq = exc.reason, exc.topic == "fuzz", exc.dlq_headers()
    else:
        assert isinstance(envelope.payload, Record)
        assert envelope.type == envelope.payload.SCHEMA
        return "ok"
    assert reason
    assert located
    assert dlq
    return reason


values = st.binary(max_size=64) | st.builds(
    lambda head, size: (head * size)[:size],
    st.binary(min_size=1, max_size=4),
    st.integers(LIMIT - 8, LIMIT + 8),
)


@settings(FUZZ, max_examples=3000)
@given(pick=st.integers(0, 10_000), value=values)
def test_random_values(pick: int, value: bytes) -> None:
    small, pool = codec_and_pool()
    headers, _ = pool[pick % len(pool)]
    outcome(small, list(headers), value)


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 400), st.binary(max_size=0)),
    st.tuples(st.just("flip"), st.integers(0, 400), st.binary(min_size=1, max_size=1)),
    st.tuples(st.just("insert"), st.integers(0, 400), st.binary(min_size=1, max_size=8)),
    st.tuples(st.just("schema"), st.integers(0, 2**32 - 1), st.binary(max_size=0)),
    st.tuples(st.just("oversize"), st.integers(0, 64), st.binary(max_size=0)),
)


def mutate(
    value: bytes, pool: list[tuple[Headers, bytes]], kind: str, at: int, extra: bytes
) -> bytes:
    if not value:
        return extra
    at = at % (len(value) + 1)
    if kind == "truncate":
        return value[:at]
    if kind == "flip":
        return value[:at] + bytes([value[at % len(value)] ^ (extra[0] or 1)]) + value[at + 1 :]
    if kind == "insert":
        return value[:at] + extra + value[at:]
    if kind == "schema":
        other = pool[at % len(pool)][1]
        return value[:1] + (other[1:5] if at % 2 else at.to_bytes(4, "big")) + value[5:]
    return value + b"\x00" * (LIMIT - len(value) + 1 + at)


@settings(FUZZ, max_examples=4000)
@given(pick=st.integers(0, 10_000), steps=st.lists(mutation, min_size=1, max_size=3))
def test_mutated_messages(pick: int, steps: list[tuple[str, int, bytes]]) -> None:
    small, pool = codec_and_pool()
    headers, value = pool[pick % len(pool)]
    for kind, at, extra in steps:
        value = mutate(value, pool, kind, at, extra)
    outcome(small, list(headers), value)


header_value = (
    st.none()
    | st.binary(max_size=40)
    | st.sampled_from(
        [
            b"1.0",
            b"application/avro",
            b"2024-01-01T00:00:00Z",
            b"orders.OrderPlaced",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        ]
    )
)
header_edit = st.tuples(
    st.sampled_from(NAMES), header_value, st.sampled_from(["set", "add", "drop"])
)


def edit_headers(
    headers: Headers, edits: list[tuple[bytes, bytes | None, str]]
) -> list[tuple[str, bytes | None]]:
    result: list[tuple[str, bytes | None]] = list(headers)
    for name, value, how in edits:
        key = name.decode()
        if how == "drop":
            result = [(k, v) for k, v in result if k != key]
        elif how == "add":
            result.append((key, value))
        else:
            result = [(k, value if k == key else v) for k, v in result]
    return result


@settings(FUZZ, max_examples=2500)
@given(pick=st.integers(0, 10_000), edits=st.lists(header_edit, max_size=4))
def test_random_header_sets(
    pick: int,
    edits: list[tuple[bytes, bytes | None, str]],
) -> None:
    small, pool = codec_and_pool()
    headers, value = pool[pick % len(pool)]
    outcome(small, edit_headers(headers, edits), value)


@settings(FUZZ, max_examples=1000)
@given(
    pick=st.integers(0, 10_000),
    edits=st.lists(header_edit, max_size=3),
    steps=st.lists(mutation, max_size=2),
    value_none=st.booleans(),
)
def test_headers_and_values_together(
    pick: int,
    edits: list[tuple[bytes, bytes | None, str]],
    steps: list[tuple[str, int, bytes]],
    value_none: bool,
) -> None:
    small, pool = codec_and_pool()
    headers, value = pool[pick % len(pool)]
    for kind, at, extra in steps:
        value = mutate(value, pool, kind, at, extra)
    outcome(small, edit_headers(headers, edits), None if value_none and not steps else value)
