"""Helpers to drive a participant's `Processor` without a broker (unit tests).

record = command_record(codec, ReserveStock(...), command_id="order:o-1:reserve_stock:1")
[out] = await processor.command(record)
reply = decode(codec, out).payload
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from services.participant.definition import Participant
from services.participant.processor import Incoming, Processor
from services.participant.service import prepare_store
from services.participant.store import Outbound, Store

REPLY_TO = "sagas.test.inbox"


def command_envelope(
    command: Record,
    *,
    command_id: str,
    saga_id: str = "saga:1",
    reply_to: str | None = REPLY_TO,
    traceparent: str | None = None,
) -> Envelope:
    """The envelope the engine would send ``command`` in."""
    return Envelope(
        id=command_id,
        type=command.SCHEMA,
        source="/sagas/test",
        time=datetime.now(UTC),
        payload=command,
        saga_id=saga_id,
        reply_to=reply_to,
        traceparent=traceparent,
    )


def incoming(
    codec: Codec, envelope: Envelope, *, topic: str = "t.commands", offset: int = 0
) -> Incoming:
    """``envelope`` encoded as a consumed record."""
    headers, value = codec.encode(envelope)
    key = envelope.saga_id.encode() if envelope.saga_id else None
    return Incoming(topic=topic, partition=0, offset=offset, key=key, value=value, headers=headers)


def command_record(codec: Codec, command: Record, *, command_id: str, **kw: str) -> Incoming:
    """A consumed record carrying ``command`` (see `command_envelope`)."""
    return incoming(codec, command_envelope(command, command_id=command_id, **kw))


def decode(codec: Codec, out: Outbound) -> Envelope:
    """Decode a produced record."""
    return codec.decode(out.headers, out.value, topic=out.topic)


async def open_processor(
    participant: Participant, path: Path, codec: Codec, **kwargs: Any
) -> Processor:
    """A processor over a new, seeded store at ``path`` (close it with ``.store.close()``)."""
    store = await prepare_store(Store(path), participant, None)
    return Processor(participant, store, codec, **kwargs)
