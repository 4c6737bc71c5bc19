"""Turn consumed Kafka records into what to produce: the core of every participant.

No faust here: the processor takes raw records and returns `Outbound` records, so it
runs the same under the aiokafka runner, the faust agent and in unit tests.

A batch (`Processor.batch`: one poll's records, each partition's in order) is applied
in ONE SQLite transaction, each record in a ``SAVEPOINT`` of its own; the runner
sends the replies only once that transaction is committed (`Processor.command` and
`Processor.event` are batches of one). For a command:

1. decode it with the codec; a bad record goes to ``<service>.dlq`` with the error's
   ``dlq_headers()`` (so does a command of a type the service has no handler for, or one
   without ``reply_to``);
2. look the ``ce_id`` up in ``processed``; if it is there (an earlier batch, or earlier
   in this one), replay the stored reply and change nothing; otherwise run the handler
   on the same connection and store its encoded reply next to the side effects;
3. a handler that raises rolls back its own savepoint only (its neighbours in the
   batch stay applied) and gets ``sagas.CommandFailed`` (``retryable`` from the
   exception type); a non-retryable failure is stored too, so a duplicate gets the
   same answer.

Invariant: a reply leaves the processor only for a command whose processed row (or
whose retryable failure, which changes nothing) is in the committed transaction: a
crash before the ``COMMIT`` applies nothing of the batch and sends none of its replies.

When the batch's transaction itself fails (``BEGIN`` or ``COMMIT`` refused, an event
handler raising, SQLite rolling the whole transaction back), nothing of it is applied
and its records are applied again one per transaction, as before batches existed: a
command whose own transaction fails then gets ``sagas.CommandFailed``; an event's
error propagates (a bug stops the service, its offset is not committed).

Tombstones: a compensation names the commands it undoes (``Envelope.compensates``).
In the compensation's transaction, each of them not processed yet gets a tombstone,
and the handler sees what was done for each (`Context.compensated`). A command that
comes after its tombstone is refused: ``sagas.CommandFailed`` (not retryable, reason
`REFUSED`), stored like any reply, and nothing is applied.

Override points, the only ones: a subclass may override `Processor.apply_command` (one
decoded command, inside the batch's transaction) and `Processor.committed` (a
transaction was committed; its replies are not returned yet). `ParticipantService`
builds its processor through a `ProcessorFactory`: ``sagas serve`` uses this class as it
is; ``python -m sagas.chaos.service`` puts in `sagas.chaos.participant.FaultyProcessor`,
which injects its faults at those two points.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import aiosqlite

from sagas.contracts import topics
from sagas.contracts.codec import Codec
from sagas.contracts.errors import MessageError, RegistryError
from sagas.contracts.headers import RawHeaders
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope, Record
from sagas.participant.definition import Compensated, Context, Handler, Participant
from sagas.participant.errors import is_retryable
from sagas.participant.replies import Replies
from sagas.participant.store import (
    Outbound,
    Store,
    find_processed,
    is_tombstoned,
    record_processed,
    record_tombstones,
)
from sagas.telemetry.participant import Handling, ParticipantTelemetry

log = logging.getLogger(__name__)

REFUSED = "compensated before it arrived"
"""The reason (prefix) of the refusal of a command whose compensation came first."""

SAVEPOINT = "sagas_record"
"""The savepoint each record of a batch is applied in."""

TRANSACTION_TIME = timedelta(milliseconds=20)
"""How long `Processor.batches` keeps one transaction open before it commits it (and
its replies can go): long enough to share a COMMIT (an fsync) between many fast
commands, short enough that a slow one delays the replies after it only a little."""


@dataclass(frozen=True, kw_only=True)
class Incoming:
    """A consumed Kafka record, as the processor needs it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: RawHeaders


class ProcessorFactory(Protocol):
    """How `ParticipantService` builds its processor: `Processor` itself, or a wrapper
    that returns a subclass (the seam of ``python -m sagas.chaos.service``)."""

    def __call__(
        self,
        participant: Participant,
        store: Store,
        codec: Codec,
        *,
        topic_prefix: str,
        telemetry: ParticipantTelemetry | None,
    ) -> Processor: ...


class Processor:
    """Applies commands and events of one participant to its store.

    Args:
        participant: the service definition.
        store: its open store.
        codec: the message codec.
        topic_prefix: prepended to the dead-letter topic (as to every topic).
        clock: the time source (tests pass a fixed one).
        telemetry: a handling span per record, reply spans and dead-letter counts (None
            when telemetry is off).
    """

    def __init__(
        self,
        participant: Participant,
        store: Store,
        codec: Codec,
        *,
        topic_prefix: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        telemetry: ParticipantTelemetry | None = None,
    ) -> None:
        self.telemetry = telemetry
        self.participant = participant
        self.store = store
        self.codec = codec
        self.dlq = topics.physical(topic_prefix, topics.service_dead_letters(participant.name))
        self.clock = clock
        self.replies = Replies(participant, codec, self.dlq, lambda: self.clock(), telemetry)
        self.applied = 0
        """Commands applied so far (their handler ran and its writes were committed)."""
        self._event_topics = {
            topics.physical(topic_prefix, s.topic) for s in participant.subscriptions
        }

    # -- batches -----------------------------------------------------------------------

    async def batch(self, records: Sequence[Incoming]) -> list[list[Outbound]]:
        """What to produce for each of ``records``, applied in ONE transaction.

        A record of a followed events topic is an event; any other is a command.
        """
        return await self._batch(self._kinds(records))

    async def batches(
        self, records: Sequence[Incoming], within: timedelta = TRANSACTION_TIME
    ) -> AsyncIterator[list[list[Outbound]]]:
        """`batch` in consecutive transactions, each closed once it has run ``within``
        (one record at least): what to produce for each record, in order, one list per
        transaction, as soon as that transaction is committed. A slow handler then holds
        back the replies of the records after it by about ``within`` at most."""
        items = self._kinds(records)
        while items:
            outs = await self._batch(items, time.monotonic() + within.total_seconds())
            yield outs
            items = items[len(outs) :]

    async def command(self, record: Incoming) -> list[Outbound]:
        """What to produce for one record of ``<service>.commands``."""
        return (await self._batch([(record, True)]))[0]

    async def event(self, record: Incoming) -> list[Outbound]:
        """Apply one record of a followed events topic; types not followed are skipped."""
        return (await self._batch([(record, False)]))[0]

    def _kinds(self, records: Sequence[Incoming]) -> list[tuple[Incoming, bool]]:
        """Each record, and whether it is a command."""
        return [(r, r.topic not in self._event_topics) for r in records]

    async def _batch(
        self, items: Sequence[tuple[Incoming, bool]], deadline: float | None = None
    ) -> list[list[Outbound]]:
        """Apply ``items`` in one transaction, or a first part of them once ``deadline``
        (monotonic) passed; what to produce for each record applied.

        Raises:
            RegistryError: the schema registry could not be reached: nothing was applied
                nor dead-lettered; the caller hands the records over again later.
        """
        # The registry is asked off the event loop (its client retries with pauses),
        # before the transaction: an outage delays the batch, it dead-letters nothing.
        await self.codec.prepare()
        await self.codec.resolve(record.value for record, _ in items)
        now = self.clock()
        outs: list[list[Outbound]] = []
        applied = tried = 0
        try:
            async with self.store.transaction() as db:
                for record, is_command in items:
                    tried += 1
                    with self._handling(record) as handling:
                        if is_command:
                            out, did = await self._command(db, record, now)
                            out = keyed_like(record, out)
                        else:
                            out, did = await self._event(db, record, now), False
                        if handling is not None and self.telemetry is not None:
                            self.telemetry.outcome(handling, out)
                    outs.append(out)
                    applied += did
                    if deadline is not None and time.monotonic() >= deadline:
                        break
        except RegistryError:
            raise  # not the records' fault: the whole batch waits for the registry
        except Exception as exc:
            return await self._recover(items[: max(tried, 1)], exc, now)
        self.committed(applied)
        return outs

    async def _recover(
        self, items: Sequence[tuple[Incoming, bool]], exc: Exception, now: datetime
    ) -> list[list[Outbound]]:
        """Answer the records of a batch whose transaction failed (nothing was applied)."""
        if len(items) > 1:
            log.warning(
                "%s: a batch of %d records failed (%r); applying them one by one",
                self.participant.name,
                len(items),
                exc,
            )
            return [(await self._batch([item]))[0] for item in items]
        [(record, is_command)] = items
        if not is_command:
            raise exc  # an event handler's error (a bug), or a store that cannot begin
        decoded = self._decode_command(record)
        if isinstance(decoded, Outbound):
            return [keyed_like(record, [decoded])]
        envelope, _ = decoded
        log.warning("%s: %s %s failed: %r", self.participant.name, envelope.type, envelope.id, exc)
        with self._handling(record):
            return [keyed_like(record, [await self._failed(envelope, exc, now)])]

    @contextlib.contextmanager
    def _handling(self, record: Incoming) -> Iterator[Handling | None]:
        if self.telemetry is None:
            yield None
            return
        with self.telemetry.handling(record) as handling:
            yield handling

    def committed(self, applied: int) -> None:
        """Called once a transaction of `batch`, `batches`, `command` or `event` is
        committed, with the number of commands it applied, before its replies are
        returned to be sent; counts them in `applied`. An override point: an override
        calls this one first."""
        self.applied += applied

    # -- commands ----------------------------------------------------------------------

    def _decode_command(self, record: Incoming) -> tuple[Envelope, Handler[Any]] | Outbound:
        """The command and its handler, or the dead letter of a record that has none."""
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
            return self.dead_letter(record, exc.dlq_headers())
        handler = self.participant.handler_for(envelope.type)
        if handler is None or envelope.reply_to is None:
            why = "unhandled-type" if handler is None else "no-reply-to"
            text = f"{self.participant.name} cannot answer {envelope.type} ({why})"
            error = MessageError(text, reason=why).located(
                record.topic, record.partition, record.offset
            )
            return self.dead_letter(record, error.dlq_headers())
        return envelope, handler

    async def _command(
        self, db: aiosqlite.Connection, record: Incoming, now: datetime
    ) -> tuple[list[Outbound], bool]:
        """One command of the batch: what to produce, and whether it was applied."""
        decoded = self._decode_command(record)
        if isinstance(decoded, Outbound):
            return [decoded], False
        envelope, handler = decoded
        return await self.apply_command(db, envelope, handler, now)

    async def apply_command(
        self, db: aiosqlite.Connection, envelope: Envelope, handler: Handler[Any], now: datetime
    ) -> tuple[list[Outbound], bool]:
        """Answer one decoded command inside the batch's open transaction ``db``: replay
        its stored reply, refuse it (a tombstone), or run ``handler`` in a savepoint and
        store the reply. Returns what to produce and whether the command was applied.

        An override point: an override may answer without calling this one (it must
        then write nothing), or wait before it; it must not commit."""
        stored = await find_processed(db, envelope.id)
        if isinstance(stored, Outbound):
            log.debug("%s: replaying the reply to %s", self.participant.name, envelope.id)
            return [stored], False
        if await is_tombstoned(db, envelope.id):
            return [await self._refuse(db, envelope, now)], False
        await db.execute(f"SAVEPOINT {SAVEPOINT}")
        try:
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
            await _roll_back(db, exc)
            log.warning(
                "%s: %s %s failed: %r", self.participant.name, envelope.type, envelope.id, exc
            )
            return [await self._failed_in(db, envelope, exc, now)], False
        await db.execute(f"RELEASE {SAVEPOINT}")
        return [reply], True

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

    async def _failed_in(
        self, db: aiosqlite.Connection, envelope: Envelope, exc: Exception, now: datetime
    ) -> Outbound:
        """The reply to a command whose handler raised (its savepoint rolled back), in
        the batch's transaction."""
        reply = self.replies.failure(envelope, exc)
        if not is_retryable(exc):
            await _store_failure(db, envelope, reply, now)
        return reply

    async def _failed(self, envelope: Envelope, exc: Exception, now: datetime) -> Outbound:
        """`_failed_in`, in a transaction of its own (its batch's failed)."""
        reply = self.replies.failure(envelope, exc)
        if not is_retryable(exc):
            async with self.store.transaction() as db:
                stored = await find_processed(db, envelope.id)
                if isinstance(stored, Outbound):
                    return stored
                await _store_failure(db, envelope, reply, now)
        return reply

    # -- events ------------------------------------------------------------------------

    async def _event(
        self, db: aiosqlite.Connection, record: Incoming, now: datetime
    ) -> list[Outbound]:
        """One event of the batch; its handlers' errors propagate (they fail the batch)."""
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
        if not wanted or await find_processed(db, envelope.id) is not None:
            return []
        context = Context(db=db, envelope=envelope, now=now, service=self.participant.name)
        await db.execute(f"SAVEPOINT {SAVEPOINT}")
        try:
            for subscription in wanted:
                await subscription.handle(envelope.payload, context)
            await record_processed(db, envelope.id, envelope.type, now, None)
        except Exception as exc:
            await _roll_back(db, exc)
            raise
        await db.execute(f"RELEASE {SAVEPOINT}")
        return []

    # -- what is sent --------------------------------------------------------------------

    def reply(self, command: Envelope, payload: Record) -> Outbound:
        """The encoded reply to ``command`` (see `Replies.reply`)."""
        return self.replies.reply(command, payload)

    def dead_letter(self, record: Incoming, error_headers: list[tuple[str, bytes]]) -> Outbound:
        """The original record, with the error headers added, for ``<service>.dlq``."""
        return self.replies.dead_letter(record, error_headers)


async def _store_failure(
    db: aiosqlite.Connection, command: Envelope, reply: Outbound, now: datetime
) -> None:
    """Store a non-retryable failure: the same answer to a duplicate. Answered for good,
    the commands it names must not be applied later, when nothing would undo them."""
    await record_tombstones(db, command.compensates, command.id, now)
    await record_processed(db, command.id, command.type, now, reply)


async def _roll_back(db: aiosqlite.Connection, exc: Exception) -> None:
    """Undo one record's writes (its savepoint); when SQLite already rolled the whole
    transaction back (e.g. the disk is full), fail the batch with ``exc``."""
    if not db.in_transaction:
        raise exc
    await db.execute(f"ROLLBACK TO {SAVEPOINT}")
    await db.execute(f"RELEASE {SAVEPOINT}")


def keyed_like(command: Incoming, outs: list[Outbound]) -> list[Outbound]:
    """What a command yields, keyed like the command: the engine keys a saga's commands
    so that what comes back lands in the saga's partition (`sagas.runtime.partitioning`)."""
    return [replace(out, key=command.key) for out in outs]
