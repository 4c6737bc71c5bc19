"""The typed shape every message takes inside the process.

This module imports nothing but the standard library, so the pure core
(`sagas.definition`, `sagas.machine`) may depend on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar


@dataclass(frozen=True, kw_only=True)
class Record:
    """Base of every typed message class (event, command or reply).

    A subclass is a frozen dataclass whose fields mirror its Avro schema one to one and
    whose ``SCHEMA`` names that schema (the Avro full name, also the CloudEvents
    ``ce_type``), e.g. ``"inventory.ReserveStock"``.
    """

    SCHEMA: ClassVar[str]


@dataclass(frozen=True, kw_only=True)
class Envelope:
    """A decoded message: its typed payload plus the metadata from its Kafka headers.

    Attributes:
        id: ``ce_id``; unique, and deterministic for commands (saga id, step, attempt).
        type: ``ce_type``, the Avro full name of the payload.
        source: ``ce_source``, who sent it (e.g. ``/sagas/order_fulfilment``).
        time: ``ce_time``, when it was sent (timezone-aware UTC).
        payload: the typed record.
        saga_id: the saga it concerns, when it concerns one.
        reply_to: the topic replies to this command go to.
        in_reply_to: on a reply, the ``ce_id`` of the command it answers (a saga
            matches the reply to its step by it).
        traceparent, tracestate: W3C trace context.
        compensates: on a saga's compensation, the ids of the commands it undoes
            (header ``compensates``); a participant refuses those it has not seen yet
            when they come (see docs/services.md).
    """

    id: str
    type: str
    source: str
    time: datetime
    payload: Record
    saga_id: str | None = None
    reply_to: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    in_reply_to: str | None = None
    compensates: tuple[str, ...] = ()
