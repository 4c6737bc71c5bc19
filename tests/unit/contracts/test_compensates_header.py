"""The ``compensates`` header: read into the envelope, bounded, refused when malformed."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sagas.contracts import errors
from sagas.contracts.codec import Codec
from sagas.contracts.headers import (
    COMPENSATES,
    MAX_HEADERS_BYTES,
    format_compensates,
    from_headers,
)
from sagas.contracts.record import Envelope
from services.messages.inventory import ReleaseStock

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def undo(compensates: tuple[str, ...]) -> Envelope:
    payload = ReleaseStock(order_id="o-1", reservation_id="")
    return Envelope(
        id="order:o-1:reserve_stock:compensate:1",
        type=payload.SCHEMA,
        source="/sagas/order_fulfilment",
        time=NOW,
        payload=payload,
        saga_id="order:o-1",
        reply_to="sagas.order_fulfilment.inbox",
        compensates=compensates,
    )


def attempts(n: int) -> tuple[str, ...]:
    return tuple(f"order:o-1:reserve_stock:{i}" for i in range(1, n + 1))


def test_the_ids_round_trip_through_the_envelope(codec: Codec) -> None:
    headers, value = codec.encode(undo(attempts(2)))
    assert ("compensates", b"order:o-1:reserve_stock:1,order:o-1:reserve_stock:2") in headers
    assert codec.decode(headers, value).compensates == attempts(2)
    headers, value = codec.encode(undo(()))
    assert "compensates" not in dict(headers)
    assert codec.decode(headers, value).compensates == ()


def test_the_header_the_runtime_writes_is_read(codec: Codec) -> None:
    # sagas.runtime.wire adds the header itself; the participant reads that one
    headers, value = codec.encode(undo(()))
    headers.insert(len(headers) - 1, (COMPENSATES, b"a:s:1,a:s:2,a:s:1"))
    assert codec.decode(headers, value).compensates == ("a:s:1", "a:s:2")  # each once


def test_more_than_4_kib_of_attempts_is_accepted(codec: Codec) -> None:
    ids = attempts(300)
    assert len(format_compensates(ids)) > 4096
    headers, value = codec.encode(undo(ids))
    assert codec.decode(headers, value).compensates == ids


def test_headers_beyond_the_total_bound_are_refused_as_too_large(codec: Codec) -> None:
    ids = attempts(3000)
    assert len(format_compensates(ids)) > MAX_HEADERS_BYTES
    headers, value = codec.encode(undo(ids))
    with pytest.raises(errors.OversizeError) as caught:
        codec.decode(headers, value)
    assert caught.value.reason == "headers-too-large"


@pytest.mark.parametrize("text", [b"a:s:1,,a:s:2", b",", b"a:s:1, ", b"x" * 4097])
def test_an_empty_or_oversized_id_is_refused(codec: Codec, text: bytes) -> None:
    headers, _ = codec.encode(undo(()))
    headers.insert(len(headers) - 1, ("compensates", text))
    with pytest.raises(errors.HeaderError, match="compensates"):
        from_headers(headers)


def test_a_duplicate_header_is_refused(codec: Codec) -> None:
    headers, _ = codec.encode(undo(("a:s:1",)))
    headers.insert(0, ("compensates", b"a:s:2"))
    with pytest.raises(errors.HeaderError) as caught:
        from_headers(headers)
    assert caught.value.reason == "header-duplicate"


@pytest.mark.parametrize("bad", [("",), ("a,b",)])
def test_an_id_that_cannot_be_written_is_refused_when_encoding(bad: tuple[str, ...]) -> None:
    with pytest.raises(ValueError, match="compensated command id"):
        format_compensates(bad)
