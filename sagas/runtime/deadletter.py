"""Dead letters Kafka accepts, however large the record that is dead-lettered.

A dead letter is the original record plus reason headers, so it is larger than the
record it copies. A record close to the broker's ``max.message.bytes`` (Kafka took
it) would make a dead letter the producer refuses (``MessageSizeTooLargeError``): the
engine would retry that transaction forever and a faust agent would crash. `fit`
shortens such a dead letter, saying so in headers, so it is always produced.
"""

from __future__ import annotations

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from sagas.contracts import deadletters
from sagas.runtime.transport.records import Consumed, OutRecord

Headers = list[tuple[str, bytes]]

MAX_DEAD_LETTER_BYTES = 1_000_000
"""A dead letter's serialized size at most: under the clients' default
``max_request_size`` (1 MiB) and the broker's default ``max.message.bytes``."""


def size_of(key: bytes | None, value: bytes | None, headers: Headers) -> int:
    """The serialized size of one record, as the producer measures it."""
    clean = [(k, v or b"") for k, v in headers]  # aiokafka allows a None header value
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, clean))


def fit(
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    max_bytes: int = MAX_DEAD_LETTER_BYTES,
) -> tuple[bytes | None, Headers]:
    """The value and headers of a dead letter of at most ``max_bytes``.

    Unchanged when small enough. Otherwise the headers the record came with are dropped
    first when they alone are too large (``dlq_headers_dropped``: how many), then the
    value is cut (``dlq_truncated``: its original length); the ``dlq_*`` reason headers
    always stay.
    """
    if size_of(key, value, headers) <= max_bytes:
        return value, headers
    reasons = [(k, v) for k, v in headers if k.startswith(deadletters.PREFIX)]
    if size_of(key, b"", headers) > max_bytes // 2:
        dropped = len(headers) - len(reasons)
        headers = [*reasons, (deadletters.HEADERS_DROPPED, str(dropped).encode())]
    if value is not None:
        headers = [*headers, (deadletters.TRUNCATED, str(len(value)).encode())]
        room = max_bytes - size_of(key, b"", headers) - 16  # 16: the value's length varint
        value = value[: max(room, 0)]
    return value, headers


def dead_letter(
    record: Consumed, physical_topic: str, target: str, reason: str, message: str, error: str
) -> OutRecord:
    """The original record for dead-letter topic ``target``, bytes untouched, with the
    reason and where it was read in headers (``dlq_topic`` names the physical topic, as
    `sagas dlq replay` needs it); shortened only when too large to produce (`fit`)."""
    headers: Headers = [
        *record.headers,
        *deadletters.headers(
            reason, error, message, physical_topic, record.partition, record.offset
        ),
    ]
    value, headers = fit(record.key, record.value, headers)  # Kafka must take it
    return OutRecord(target, value, key=record.key, headers=tuple(headers))
