"""CloudEvents Kafka protocol binding, binary content mode, as aiokafka-style headers.

The payload stays the Avro value; the event attributes travel as headers::

    ce_specversion  "1.0"
    ce_id           unique message id (deterministic for commands)
    ce_type         Avro full name of the payload, e.g. "inventory.ReserveStock"
    ce_source       who sent it, e.g. "/sagas/order_fulfilment"
    ce_time         RFC 3339 timestamp, UTC ("2024-05-01T12:00:00.123000Z")
    content-type    "application/avro" (the Confluent wire format inside)
    saga_id         the saga the message concerns (optional)
    reply_to        where replies to this command go (optional)
    in_reply_to     on a reply, the ce_id of the command it answers (optional)
    traceparent     W3C trace context (optional); tracestate goes with it

A saga's compensation also carries::

    compensates     the ids of the commands it undoes, comma-separated
                    ("order:o-1:reserve_stock:1,order:o-1:reserve_stock:2")

``compensates`` grows with the attempts of its step (one id each), so it is exempt
from the 4 KiB bound of one header: it may fill what all headers together may hold
(`MAX_HEADERS_BYTES`, some 1,500 ids of 40 bytes). A compensation whose headers are
larger is refused like any other oversized message (``headers-too-large``): a
participant dead-letters it rather than undo only some of its commands.

Written by hand rather than with the ``cloudevents`` SDK: its Kafka binding takes a
``dict`` of headers, which would silently merge a forged duplicate ``ce_type`` that we
must reject, and its errors would need translating anyway.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sagas.contracts.errors import HeaderError, OversizeError
from sagas.contracts.record import Envelope

SPECVERSION = "1.0"
CONTENT_TYPE = "application/avro"

Headers = list[tuple[str, bytes]]
"""Headers as aiokafka produces and consumes them."""

RawHeaders = Sequence[tuple[str, bytes | None]]
"""Headers as they may arrive (aiokafka allows a ``None`` value)."""

_REQUIRED = ("ce_specversion", "ce_id", "ce_type", "ce_source", "ce_time", "content-type")
_OPTIONAL = ("saga_id", "reply_to", "in_reply_to", "traceparent", "tracestate")
COMPENSATES = "compensates"
_KNOWN = frozenset((*_REQUIRED, *_OPTIONAL, COMPENSATES))
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$")
_MAX_HEADER_BYTES = 4096
MAX_HEADERS = 64
"""Most headers one message may carry, known or not."""
MAX_HEADERS_BYTES = 64 * 1024
"""Most bytes all headers of one message may hold together (names and values)."""


@dataclass(frozen=True, kw_only=True)
class Metadata:
    """The envelope attributes read from the headers of one message."""

    id: str
    type: str
    source: str
    time: datetime
    saga_id: str | None = None
    reply_to: str | None = None
    in_reply_to: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    compensates: tuple[str, ...] = ()


def format_time(moment: datetime) -> str:
    """RFC 3339 text of an aware datetime, in UTC with a ``Z``."""
    if moment.utcoffset() is None:
        raise ValueError("ce_time must be timezone-aware")
    text = moment.astimezone(UTC).isoformat(timespec="microseconds")
    return text.removesuffix("+00:00") + "Z"


def to_headers(envelope: Envelope) -> Headers:
    """The headers of one outgoing message (``content-type`` last)."""
    headers: Headers = [
        ("ce_specversion", SPECVERSION.encode()),
        ("ce_id", envelope.id.encode()),
        ("ce_type", envelope.type.encode()),
        ("ce_source", envelope.source.encode()),
        ("ce_time", format_time(envelope.time).encode()),
    ]
    for name in _OPTIONAL:
        value = getattr(envelope, name)
        if value is not None:
            headers.append((name, value.encode()))
    if envelope.compensates:
        headers.append((COMPENSATES, format_compensates(envelope.compensates).encode()))
    headers.append(("content-type", CONTENT_TYPE.encode()))
    return headers


def format_compensates(ids: Sequence[str]) -> str:
    """The ``compensates`` header's text: the ids joined by commas.

    Raises:
        ValueError: an id is empty or holds a comma (it could not be read back).
    """
    for command_id in ids:
        if not command_id or "," in command_id:
            raise ValueError(f"a compensated command id cannot be {command_id!r}")
    return ",".join(ids)


def parse_compensates(text: str) -> tuple[str, ...]:
    """The command ids of a ``compensates`` header, in order, each once.

    Raises:
        HeaderError: an empty id (``"a,,b"``), or one longer than a ``ce_id`` may be.
    """
    ids = text.split(",")
    for command_id in ids:
        if not command_id.strip():
            raise HeaderError("header compensates names an empty command id")
        if len(command_id.encode()) > _MAX_HEADER_BYTES:
            raise HeaderError(f"header compensates names an id over {_MAX_HEADER_BYTES} bytes")
    return tuple(dict.fromkeys(ids))


def from_headers(headers: RawHeaders) -> Metadata:
    """Validate the headers of an incoming message and read its attributes.

    Unknown headers are ignored; known ones must appear once, be UTF-8, and be
    well-formed; each at most 4 KiB, except ``compensates``. All of them together
    are bounded (`MAX_HEADERS`, `MAX_HEADERS_BYTES`).
    An invalid ``traceparent`` is dropped (with its ``tracestate``), as the W3C spec
    asks, instead of rejecting the message.

    Raises:
        HeaderError: with reason ``header-missing``, ``header-duplicate`` or
            ``header-invalid``, naming the header.
        OversizeError: with reason ``headers-too-large``.
    """
    values = _collect(headers)
    for name in _REQUIRED:
        if name not in values:
            raise HeaderError(f"header {name} is missing", reason="header-missing")
    if values["ce_specversion"] != SPECVERSION:
        raise HeaderError(f"ce_specversion is {values['ce_specversion']!r}, expected 1.0")
    if values["content-type"] != CONTENT_TYPE:
        raise HeaderError(f"content-type is {values['content-type']!r}, expected {CONTENT_TYPE}")
    for name in ("ce_id", "ce_type", "ce_source", "saga_id", "reply_to", "in_reply_to"):
        if name in values and not values[name].strip():
            raise HeaderError(f"header {name} is empty")
    traceparent = values.get("traceparent")
    tracestate = values.get("tracestate")
    if traceparent is not None and not _TRACEPARENT.match(traceparent):
        traceparent = tracestate = None
    return Metadata(
        id=values["ce_id"],
        type=values["ce_type"],
        source=values["ce_source"],
        time=_parse_time(values["ce_time"]),
        saga_id=values.get("saga_id"),
        reply_to=values.get("reply_to"),
        in_reply_to=values.get("in_reply_to"),
        traceparent=traceparent,
        tracestate=tracestate if traceparent is not None else None,
        compensates=parse_compensates(values[COMPENSATES]) if COMPENSATES in values else (),
    )


def _collect(headers: RawHeaders) -> dict[str, str]:
    values: dict[str, str] = {}
    total = 0
    for count, item in enumerate(headers, 1):
        if not isinstance(item, tuple) or len(item) != 2 or not isinstance(item[0], str):
            raise HeaderError(f"malformed header entry {item!r:.60}")
        name, raw = item
        total += len(name) + (len(raw) if isinstance(raw, bytes) else 0)
        if count > MAX_HEADERS or total > MAX_HEADERS_BYTES:
            raise OversizeError(
                f"more than {MAX_HEADERS} headers or {MAX_HEADERS_BYTES} bytes of them",
                reason="headers-too-large",
            )
        if name not in _KNOWN:
            continue
        if name in values:
            raise HeaderError(f"header {name} appears more than once", reason="header-duplicate")
        if not isinstance(raw, bytes):
            raise HeaderError(f"header {name} has no bytes value")
        # compensates is bounded by MAX_HEADERS_BYTES alone (see the module docstring).
        if len(raw) > _MAX_HEADER_BYTES and name != COMPENSATES:
            raise HeaderError(f"header {name} is longer than {_MAX_HEADER_BYTES} bytes")
        try:
            values[name] = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise HeaderError(f"header {name} is not UTF-8") from None
    return values


def _parse_time(text: str) -> datetime:
    # RFC 3339 needs a date, a time and an offset; fromisoformat is laxer, so check both.
    if len(text) < 20 or text[10] not in "Tt ":
        raise HeaderError(f"ce_time {text!r:.40} is not an RFC 3339 timestamp")
    try:
        moment = datetime.fromisoformat(text.upper().replace(" ", "T"))
    except ValueError:
        raise HeaderError(f"ce_time {text!r:.40} is not an RFC 3339 timestamp") from None
    if moment.utcoffset() is None:
        raise HeaderError(f"ce_time {text!r:.40} has no UTC offset")
    return moment.astimezone(UTC)
