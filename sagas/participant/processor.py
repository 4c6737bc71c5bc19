"""Turn one consumed Kafka record into what to produce: the core of every participant.

No faust here: the processor takes the raw record and returns `Outbound` records, so
it runs the same under the faust agent and in unit tests. For a command:

1. decode it with the codec; a bad record goes to ``<service>.dlq`` with the error's
   ``dlq_headers()`` (so does a command of a type the service has no handler for, or one
   without ``reply_to``);
2. in ONE SQLite transaction: look the ``ce_id`` up in ``processed``; if it is there,
   replay the stored reply and change nothing; otherwise run the handler on the same
   connection and store its encoded reply next to the side effects;
3. a handler that raises rolls its writes back and gets ``sagas.CommandFailed``
   (``retryable`` from the exception type); a non-retryable failure is stored too, so
   a duplicate gets the same answer.

Tombstones: a compensation names the commands it undoes (``Envelope.compensates``).
In the compensation's transaction, each of them not processed yet gets a tombstone,
and the handler sees what was done for each (`Context.compensated`). A command that
comes after its tombstone is refused: ``sagas.CommandFailed`` (not retryable, reason
`REFUSED`), stored like any reply, and nothing is applied.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite

from sagas.contracts.codec import Codec
from sagas.contracts.errors import MessageError
from sagas.contracts.headers import RawHeaders
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope, Record
from sagas.participant.definition import Compensated, Context, Handler, Participant
from sagas.participant.errors import InjectedFault, is_retryable
from sagas.participant.store import (
    Outbound,
    Store,
    find_processed,
    is_tombstoned,
    record_processed,
    record_tombstones,
)
from sagas.runtime.deadletter import fit
from sagas.telemetry.participant import ParticipantTelemetry

log = logging.getLogger(__name__)

REFUSED = "compensated before it arrived"
"""The reason (prefix) of the refusal of a command whose compensation came first."""


@dataclass(frozen=True, kw_only=True)
class Faults:
    """The fault knobs (all off by default); see docs/services.md."""

    failure_rate: float = 0.0
    latency: timedelta = timedelta(0)
    crash_after: int | None = None
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class Incoming:
    """A consumed Kafka record, as the processor needs it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: RawHeaders


class Processor:
    """Applies commands and events of one participant to its store.

    Args:
        participant: the service definition.
        store: its open store.
        codec: the message codec.
        topic_prefix: prepended to the dead-letter topic (as to every topic).
        faults: the fault knobs.
        crash: called (with the count) after the n-th applied command when
            ``faults.crash_after`` is n; by default the process exits at once.
        clock: the time source (tests pass a fixed one).
        telemetry: reply spans and dead-letter counts (None when telemetry is off).
    """

    def __init__(
        self,
        participant: Participant,
        store: Store,
        codec: Codec,
        *,
        topic_prefix: str = "",
        faults: Faults | None = None,
        crash: Callable[[int], None] | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        telemetry: ParticipantTelemetry | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.participant = participant
        self.store = store
        self.codec = codec
        self.dlq = f"{topic_prefix}{participant.name}.dlq"
        self.faults = faults or Faults()
        self.crash = crash or _exit_now
        self.clock = clock
        self.applied = 0
        self._random = random.Random(self.faults.seed)

    # -- commands ----------------------------------------------------------------------

    async def command(self, record: Incoming) -> list[Outbound]:
        """What to produce for one record of ``<service>.commands``.

        A reply is keyed like the command: the engine keys a saga's commands so that
        what comes back lands in the saga's partition (`sagas.runtime.partitioning`).
        """
        return [replace(out, key=record.key) for out in await self._command(record)]

    async def _command(self, record: Incoming) -> list[Outbound]:
        try:
            envelope = self.codec.decode(
                record.headers,
                record.value,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        except MessageError as exc:
            log.warning("%s: dead-lettering %s", self.participant.name, exc)
            return [self.dead_letter(record, exc.dlq_headers())]
        handler = self.participant.handler_for(envelope.type)
        if handler is None or envelope.reply_to is None:
            why = "unhandled-type" if handler is None else "no-reply-to"
            text = f"{self.participant.name} cannot answer {envelope.type} ({why})"
            error = MessageError(text, reason=why).located(
                record.topic, record.partition, record.offset
            )
            return [self.dead_letter(record, error.dlq_headers())]
        if self.faults.latency > timedelta(0):
            await asyncio.sleep(self.faults.latency.total_seconds())
        if self.faults.failure_rate and self._random.random() < self.faults.failure_rate:
            failed = _failure(envelope, InjectedFault("injected fault"))
            return [self.reply(envelope, failed)]
        return [await self._apply(handler, envelope)]

    async def _apply(self, handler: Handler[Any], envelope: Envelope) -> Outbound:
        now = self.clock()
        try:
            async with self.store.transaction() as db:
                stored = await find_processed(db, envelope.id)
                if isinstance(stored, Outbound):
                    log.info("%s: replaying the reply to %s", self.participant.name, envelope.id)
                    return stored
                if await is_tombstoned(db, envelope.id):
                    return await self._refuse(db, envelope, now)
                context = Context(
                    db=db,
                    envelope=envelope,
                    now=now,
                    service=self.participant.name,
                    compensated=await self._compensated(db, envelope, now),
                )
                reply = self.reply(envelope, await handler.handle(envelope.payload, context))
                await record_processed(db, envelope.id, envelope.type, now, reply)
        except Exception as exc:
            log.warning(
                "%s: %s %s failed: %r", self.participant.name, envelope.type, envelope.id, exc
            )
            return await self._failed(envelope, exc, now)
        self._applied()
        return reply

    async def _compensated(
        self, db: aiosqlite.Connection, envelope: Envelope, now: datetime
    ) -> tuple[Compensated, ...]:
        """What was done here for each command ``envelope`` undoes; tombstones those not
        processed yet (in the caller's transaction)."""
        if not envelope.compensates:
            return ()
        added = set(await record_tombstones(db, envelope.compensates, envelope.id, now))
        found = []
        for command_id in envelope.compensates:
            stored = await find_processed(db, command_id)
            reply = None
            if isinstance(stored, Outbound):
                reply = self.codec.decode(stored.headers, stored.value).payload
            refused = command_id in added or await is_tombstoned(db, command_id)
            found.append(Compensated(command_id=command_id, reply=reply, refused=refused))
        return tuple(found)

    async def _refuse(
        self, db: aiosqlite.Connection, envelope: Envelope, now: datetime
    ) -> Outbound:
        """The stored refusal of a command whose compensation was processed first."""
        async with db.execute(
            "SELECT compensated_by FROM tombstones WHERE command_id = ?", (envelope.id,)
        ) as cursor:
            row = await cursor.fetchone()
        log.warning(
            "%s: refusing %s %s: %s (%s)",
            self.participant.name,
            envelope.type,
            envelope.id,
            REFUSED,
            row[0] if row else "?",
        )
        refusal = CommandFailed(
            command_id=envelope.id,
            command_type=envelope.type,
            reason=f"{REFUSED} ({row[0] if row else 'unknown'})"[:500],
            retryable=False,
        )
        reply = self.reply(envelope, refusal)
        await record_processed(db, envelope.id, envelope.type, now, reply)
        return reply

    async def _failed(self, envelope: Envelope, exc: Exception, now: datetime) -> Outbound:
        reply = self.reply(envelope, _failure(envelope, exc))
        if not is_retryable(exc):
            async with self.store.transaction() as db:
                stored = await find_processed(db, envelope.id)
                if isinstance(stored, Outbound):
                    return stored
                # Answered for good: the commands it names must not be applied later,
                # when nothing would undo them any more.
                await record_tombstones(db, envelope.compensates, envelope.id, now)
                await record_processed(db, envelope.id, envelope.type, now, reply)
        return reply

    def _applied(self) -> None:
        self.applied += 1
        if self.faults.crash_after is not None and self.applied >= self.faults.crash_after:
            self.crash(self.applied)

    def reply(self, command: Envelope, payload: Record) -> Outbound:
        """The encoded reply to ``command``: keyed by saga id, ids and trace copied (with
        telemetry on, the trace context of the reply's own span), ``in_reply_to`` the
        command's id (the saga matches the reply to its step by it)."""
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

    # -- events ------------------------------------------------------------------------

    async def event(self, record: Incoming) -> list[Outbound]:
        """Apply one record of a followed events topic; types not followed are skipped."""
        try:
            envelope = self.codec.decode(
                record.headers,
                record.value,
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )
        except MessageError as exc:
            log.warning("%s: dead-lettering %s", self.participant.name, exc)
            return [self.dead_letter(record, exc.dlq_headers())]
        wanted = [s for s in self.participant.subscriptions if envelope.type == s.event.SCHEMA]
        if not wanted:
            return []
        now = self.clock()
        async with self.store.transaction() as db:
            if await find_processed(db, envelope.id) is not None:
                return []
            context = Context(db=db, envelope=envelope, now=now, service=self.participant.name)
            for subscription in wanted:
                await subscription.handle(envelope.payload, context)
            await record_processed(db, envelope.id, envelope.type, now, None)
        return []

    # -- dead letters ------------------------------------------------------------------

    def dead_letter(self, record: Incoming, error_headers: list[tuple[str, bytes]]) -> Outbound:
        """The original record, with the error headers added, for ``<service>.dlq``."""
        original = [(name, value or b"") for name, value in record.headers]
        if self.telemetry is not None:
            self.telemetry.dead_lettered(self.dlq)
        # Shortened only when too large to produce (a faust agent would crash on it).
        value, headers = fit(record.key, record.value, original + error_headers)
        return Outbound(topic=self.dlq, key=record.key, value=value, headers=headers)


def _failure(envelope: Envelope, exc: BaseException) -> CommandFailed:
    return CommandFailed(
        command_id=envelope.id,
        command_type=envelope.type,
        reason=f"{type(exc).__name__}: {exc}"[:500],
        retryable=is_retryable(exc),
    )


def _exit_now(count: int) -> None:
    import os

    log.error("fault injection: crashing after %d commands", count)
    os._exit(70)
