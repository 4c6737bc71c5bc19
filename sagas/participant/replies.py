"""What a participant sends: the replies to its commands and its dead letters.

A reply is keyed by the saga id, carries the command's ids and trace context (with
telemetry on, the context of the reply's own span) and ``in_reply_to`` the command's
id: the saga matches it to its step by that. A handler that raised gets
``sagas.CommandFailed``, retryable by the exception's type (`is_retryable`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope, Record
from sagas.participant.definition import Participant
from sagas.participant.errors import is_retryable
from sagas.participant.store import Outbound
from sagas.runtime.deadletter import fit
from sagas.telemetry.participant import ParticipantTelemetry

if TYPE_CHECKING:
    from sagas.participant.processor import Incoming


class Replies:
    """Encodes the records one participant sends.

    Args:
        participant: the service (its ``source``).
        codec: the message codec.
        dlq: the dead-letter topic.
        clock: the time source (each reply's ``ce_time``).
        telemetry: reply spans and dead-letter counts (None when telemetry is off).
    """

    def __init__(
        self,
        participant: Participant,
        codec: Codec,
        dlq: str,
        clock: Callable[[], datetime],
        telemetry: ParticipantTelemetry | None,
    ) -> None:
        self.participant, self.codec, self.dlq = participant, codec, dlq
        self.clock, self.telemetry = clock, telemetry

    def reply(self, command: Envelope, payload: Record) -> Outbound:
        """The encoded reply ``payload`` to ``command``."""
        trace = self.telemetry.reply(command, payload) if self.telemetry is not None else None
        traceparent, tracestate = trace or (command.traceparent, command.tracestate)
        envelope = Envelope(
            id=f"{command.id}:reply",
            type=payload.SCHEMA,
            source=self.participant.source,
            time=self.clock(),
            payload=payload,
            saga_id=command.saga_id,
            in_reply_to=command.id,
            traceparent=traceparent,
            tracestate=tracestate,
        )
        headers, value = self.codec.encode(envelope)
        key = command.saga_id.encode() if command.saga_id else None
        return Outbound(topic=command.reply_to or "", key=key, value=value, headers=headers)

    def failure(self, command: Envelope, exc: BaseException) -> Outbound:
        """The ``sagas.CommandFailed`` reply to ``command``, whose handling raised ``exc``."""
        return self.reply(command, failure(command, exc))

    def dead_letter(self, record: Incoming, error_headers: list[tuple[str, bytes]]) -> Outbound:
        """The original record, with the error headers added, for the dead-letter topic."""
        original = [(name, value or b"") for name, value in record.headers]
        if self.telemetry is not None:
            self.telemetry.dead_lettered(self.dlq)
        # Shortened only when too large to produce (a faust agent would crash on it).
        value, headers = fit(record.key, record.value, original + error_headers)
        return Outbound(topic=self.dlq, key=record.key, value=value, headers=headers)


def failure(command: Envelope, exc: BaseException) -> CommandFailed:
    """``sagas.CommandFailed`` for ``command``: the exception as reason, retryable by type."""
    return CommandFailed(
        command_id=command.id,
        command_type=command.type,
        reason=f"{type(exc).__name__}: {exc}"[:500],
        retryable=is_retryable(exc),
    )
