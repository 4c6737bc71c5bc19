"""Each way a message can be wrong ends in its own typed ContractError with DLQ headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sagas.contracts import errors
from sagas.contracts.codec import Codec
from sagas.contracts.headers import MAX_HEADERS, MAX_HEADERS_BYTES, Headers
from sagas.contracts.record import Envelope
from sagas.contracts.schemas import SchemaTree
from sagas.errors import SagasError
from services.messages.orders import OrderCancelled, OrderFulfilled
from services.messages.payments import PaymentDeclined
from tests.unit.contracts.strategies import sample

NOW = datetime(2024, 5, 1, tzinfo=UTC)


def message(codec: Codec) -> tuple[Headers, bytes]:
    payload = sample(OrderCancelled)
    return codec.encode(
        Envelope(id="m", type=payload.SCHEMA, source="/t", time=NOW, payload=payload)
    )


def replace(headers: Headers, name: str, value: bytes | None) -> list[tuple[str, bytes | None]]:
    return [(k, value if k == name else v) for k, v in headers]


def reason_of(codec: Codec, headers: list[tuple[str, bytes | None]] | Headers, value: bytes) -> str:
    with pytest.raises(errors.MessageError) as caught:
        codec.decode(headers, value, topic="orders.events", partition=2, offset=41)
    assert caught.value.topic == "orders.events"
    return caught.value.reason


def test_the_tree_is_rooted_in_sagas_error() -> None:
    assert issubclass(errors.ContractError, SagasError)
    assert errors.RegistryError.retryable
    assert not errors.MessageError.retryable


def test_truncated_and_bad_magic(codec: Codec) -> None:
    headers, value = message(codec)
    assert reason_of(codec, headers, value[:3]) == "truncated"
    assert reason_of(codec, headers, b"\x01" + value[1:]) == "bad-magic-byte"
    assert reason_of(codec, headers, value[:-2]) == "payload-corrupt"
    assert reason_of(codec, headers, value + b"\x00") == "payload-corrupt"


def test_unknown_schema_id(codec: Codec) -> None:
    headers, value = message(codec)
    assert reason_of(codec, headers, b"\x00\x00\x00\x00\x07" + value[5:]) == "unknown-schema"


def test_ce_type_must_match_the_schema_id(codec: Codec) -> None:
    headers, value = message(codec)
    forged = replace(headers, "ce_type", OrderFulfilled.SCHEMA.encode())
    assert reason_of(codec, forged, value) == "type-mismatch"
    assert reason_of(codec, replace(headers, "ce_type", b"nope.Nope"), value) == "unknown-type"


def test_header_problems(codec: Codec) -> None:
    headers, value = message(codec)
    missing = [(k, v) for k, v in headers if k != "ce_id"]
    assert reason_of(codec, missing, value) == "header-missing"
    assert reason_of(codec, [*headers, ("ce_type", b"orders.OrderCancelled")], value) == (
        "header-duplicate"
    )
    assert reason_of(codec, replace(headers, "ce_time", b"yesterday"), value) == "header-invalid"
    assert reason_of(codec, replace(headers, "ce_time", b"2024-05-01T10:00:00"), value) == (
        "header-invalid"
    )
    assert reason_of(codec, replace(headers, "ce_specversion", b"0.3"), value) == "header-invalid"
    assert reason_of(codec, replace(headers, "content-type", b"json"), value) == "header-invalid"
    assert reason_of(codec, replace(headers, "ce_source", b"\xff"), value) == "header-invalid"
    assert reason_of(codec, replace(headers, "ce_id", None), value) == "header-invalid"


def test_invalid_traceparent_is_dropped_not_fatal(codec: Codec) -> None:
    headers, value = message(codec)
    decoded = codec.decode([*headers, ("traceparent", b"garbage"), ("tracestate", b"a=b")], value)
    assert decoded.traceparent is None
    assert decoded.tracestate is None


def test_oversize_is_rejected_before_parsing(codec: Codec, tree: SchemaTree) -> None:
    headers, value = message(codec)
    small = Codec(codec.registry, tree.current, codec.classes, max_payload_bytes=len(value) - 1)
    assert reason_of(small, headers, value) == "payload-too-large"


def test_invalid_enum_symbol_is_an_invalid_field(codec: Codec) -> None:
    payload = PaymentDeclined(order_id="o", reason=sample(PaymentDeclined).reason)
    headers, value = codec.encode(
        Envelope(id="m", type=payload.SCHEMA, source="/t", time=NOW, payload=payload)
    )
    # The enum index is the last varint of the body: point it past the symbols.
    with pytest.raises(errors.PayloadError):
        codec.decode(headers, value[:-1] + b"\x7e")


def test_dlq_headers_carry_reason_message_and_location(codec: Codec) -> None:
    headers, _ = message(codec)
    with pytest.raises(errors.FramingError) as caught:
        codec.decode(headers, b"\x05", topic="t", partition=0, offset=9)
    dlq = dict(caught.value.dlq_headers())
    assert dlq["dlq_reason"] == b"truncated"
    assert dlq["dlq_error"] == b"FramingError"
    assert dlq["dlq_offset"] == b"9"
    assert b"shorter than the wire prefix" in dlq["dlq_message"]
    assert "(at t[0]@9)" in str(caught.value)


def test_encode_rejects_naive_times_and_wrong_types(codec: Codec) -> None:
    payload = OrderCancelled(order_id="o", reason="r", cancelled_at=datetime(2024, 1, 1))
    with pytest.raises(errors.EncodeError, match="cancelled_at"):
        codec.encode(Envelope(id="m", type=payload.SCHEMA, source="/t", time=NOW, payload=payload))
    good = sample(OrderCancelled)
    with pytest.raises(errors.EncodeError):
        codec.encode(
            Envelope(id="m", type="orders.OrderPlaced", source="/t", time=NOW, payload=good)
        )


def test_values_that_do_not_fit_the_class_are_invalid_fields() -> None:
    from sagas.contracts.convert import from_avro

    with pytest.raises(errors.InvalidFieldError, match=r"PaymentDeclined\.reason"):
        from_avro(PaymentDeclined, {"order_id": "o", "reason": "BOGUS"})
    with pytest.raises(errors.InvalidFieldError, match=r"OrderCancelled\.cancelled_at"):
        from_avro(OrderCancelled, {"order_id": "o", "reason": "r", "cancelled_at": 5})


def test_too_many_or_too_large_headers_are_rejected(codec: Codec) -> None:
    headers, value = message(codec)
    many = [*headers, *(("x-extra", b"1") for _ in range(MAX_HEADERS))]
    assert reason_of(codec, many, value) == "headers-too-large"
    big = [*headers, ("x-blob", b"x" * MAX_HEADERS_BYTES)]
    assert reason_of(codec, big, value) == "headers-too-large"
    # Unknown headers within the bounds are still ignored.
    assert codec.decode([*headers, ("x-extra", b"1")], value).id
