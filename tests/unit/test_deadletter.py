"""`sagas.runtime.deadletter.fit`: a dead letter Kafka takes, however large the original."""

from __future__ import annotations

from sagas.runtime.deadletter import MAX_DEAD_LETTER_BYTES, fit, size_of

REASON = [("dlq_reason", b"payload-corrupt"), ("dlq_message", b"x" * 200)]


def test_a_small_dead_letter_is_the_original_untouched() -> None:
    headers = [("ce_type", b"inventory.StockReleased"), *REASON]
    assert fit(b"k", b"\x00" * 100, headers) == (b"\x00" * 100, headers)


def test_a_record_near_the_broker_limit_is_cut_under_the_limit_and_says_so() -> None:
    original = bytes(range(256)) * 4090  # 1,047,040 bytes: Kafka took it, its DLQ copy no
    headers = [("ce_type", b"inventory.StockReleased"), *REASON]
    assert size_of(b"key", original, headers) > MAX_DEAD_LETTER_BYTES
    value, fitted = fit(b"key", original, headers)
    assert value is not None
    assert original.startswith(value)
    assert len(value) > 900_000
    assert size_of(b"key", value, fitted) <= MAX_DEAD_LETTER_BYTES
    assert dict(fitted)["dlq_truncated"] == str(len(original)).encode()
    assert dict(fitted)["dlq_reason"] == b"payload-corrupt"
    assert dict(fitted)["ce_type"] == b"inventory.StockReleased"


def test_huge_headers_are_dropped_but_the_reason_stays() -> None:
    headers = [*((f"junk{i}", b"j" * 1000) for i in range(1100)), *REASON]
    value, fitted = fit(b"key", b"\x00" * 10, headers)
    assert size_of(b"key", value, fitted) <= MAX_DEAD_LETTER_BYTES
    assert dict(fitted)["dlq_headers_dropped"] == b"1100"
    assert dict(fitted)["dlq_reason"] == b"payload-corrupt"
    assert not any(k.startswith("junk") for k, _ in fitted)
