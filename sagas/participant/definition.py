"""What a participant service is, as data: its name, handlers, subscriptions and store.

A `Participant` is built by a plain function in the service's module; nothing is
registered on import and nothing starts. `Participant.usages()` lists what the
handlers read and return, for ``sagas check``.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import aiosqlite

from sagas.contracts.record import Envelope, Record
from sagas.contracts.usages import Usage

if TYPE_CHECKING:
    from sagas.participant.timers import Every

C = TypeVar("C", bound=Record)
R = TypeVar("R", bound=Record)

JSONObject = dict[str, Any]


def derived_id(message_id: str, prefix: str) -> str:
    """The id `Context.new_id` makes for ``message_id``: ``<prefix>-<16 hex digits>``."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:16]
    return f"{prefix}-{digest}"


@dataclass(frozen=True, kw_only=True)
class Compensated:
    """A command that the compensation being handled undoes, as this service knows it.

    Attributes:
        command_id: its ``ce_id`` (from the compensation's ``compensates`` header).
        reply: the reply stored for it here, decoded: what it did (a success, a
            business failure such as ``StockUnavailable``, or ``sagas.CommandFailed``);
            None when it never arrived.
        refused: it had not arrived when a compensation named it: the service refuses
            it whenever it comes (a tombstone), so it never applies anything.
    """

    command_id: str
    reply: Record | None = None
    refused: bool = False


@dataclass(frozen=True, kw_only=True)
class Context:
    """What a handler gets besides its command.

    Attributes:
        db: the service's SQLite connection, inside the transaction that will also
            record the command as processed: write the side effects here and do not
            commit (the framework commits both together, or rolls both back).
        envelope: the command's (or event's) metadata: id, saga id, trace context.
        now: the time the command is handled (UTC).
        service: the service's name.
        compensated: for a compensation, every command it undoes (its ``compensates``
            header), with what this service did for each; empty otherwise. Commands
            not seen yet are refused from now on, in this same transaction.
    """

    db: aiosqlite.Connection
    envelope: Envelope
    now: datetime
    service: str
    compensated: tuple[Compensated, ...] = ()

    def new_id(self, prefix: str) -> str:
        """An id derived from the message id: the same command always makes the same id."""
        return derived_id(self.envelope.id, prefix)

    def compensated_ids(self, prefix: str) -> tuple[str, ...]:
        """The ids ``new_id(prefix)`` made, or would have made, while handling each command
        this compensation undoes: what to look for to undo exactly their work (a row
        made by another command, e.g. one the employee held before the saga, has
        another id)."""
        return tuple(derived_id(c.command_id, prefix) for c in self.compensated)

    def compensated_replies(self, reply_type: type[R]) -> list[R]:
        """The stored replies of type ``reply_type`` to the commands this compensation
        undoes (e.g. ``StockReserved``: the reservations they made), oldest first."""
        return [c.reply for c in self.compensated if isinstance(c.reply, reply_type)]


@dataclass(frozen=True)
class Handler(Generic[C]):
    """How a service applies one command type.

    Attributes:
        command: the command class, e.g. ``ReserveStock``.
        handle: ``async (command, context) -> reply``; the reply is one of ``replies``.
            Raise a `ServiceError` for a reply of ``sagas.CommandFailed``.
        replies: the reply classes ``handle`` may return.
    """

    command: type[C]
    handle: Callable[[C, Context], Awaitable[Record]]
    replies: tuple[type[Record], ...]

    def reads(self) -> tuple[str, ...]:
        """The command fields a handler reads: all of them."""
        return tuple(f.name for f in dataclasses.fields(self.command))


@dataclass(frozen=True)
class Subscription(Generic[C]):
    """A domain event a service follows (no reply). Other types on the topic are skipped.

    Attributes:
        topic: the events topic, e.g. ``"orders.events"`` (the topic prefix is added).
        event: the event class.
        handle: ``async (event, context) -> None``, in the same transaction as the
            record that the event was processed.
        reads: the event fields ``handle`` reads.
    """

    topic: str
    event: type[C]
    handle: Callable[[C, Context], Awaitable[None]]
    reads: tuple[str, ...] = ()


Seeder = Callable[[aiosqlite.Connection, Mapping[str, Any]], Awaitable[None]]
Checker = Callable[[aiosqlite.Connection], Awaitable[list[str]]]
Route = Callable[[Any, JSONObject], Awaitable[JSONObject]]


@dataclass(frozen=True, kw_only=True)
class Participant:
    """A participant service, as data.

    Attributes:
        name: the service; it reads ``<name>.commands`` and dead-letters to ``<name>.dlq``.
        handlers: one per command type.
        subscriptions: domain events it follows.
        schema: the SQL that creates its business tables (``IF NOT EXISTS``).
        seed: fills the business tables from seed data, on an empty store.
        default_seed: the deterministic seed data used when no seed file is given.
        invariants: reads the store and returns every broken business invariant.
        web_port: the default port of the health endpoint.
        routes: extra ``POST`` endpoints: path -> ``async (service, json) -> json``.
        on_start: called once the service runs (e.g. to flush an outbox).
        after_command: called after each batch of commands' replies was produced, with
            the service (e.g. to publish the domain events an outbox holds); never
            while another call of it or of ``on_start`` runs.
        publishes: domain event topics it writes to, created when missing like its own.
        timers: work run periodically on the store (e.g. expiring holds), each
            ``Every(interval, run)``; a runner drives them with
            `sagas.participant.timers.Timers` (``tick(now)``, or ``run_timers``).
    """

    name: str
    handlers: tuple[Handler[Any], ...] = ()
    subscriptions: tuple[Subscription[Any], ...] = ()
    schema: str = ""
    seed: Seeder | None = None
    default_seed: Mapping[str, Any] = field(default_factory=dict)
    invariants: Checker | None = None
    web_port: int = 6066
    routes: Mapping[str, Route] = field(default_factory=dict)
    on_start: Callable[[Any], Awaitable[None]] | None = None
    after_command: Callable[[Any], Awaitable[None]] | None = None
    publishes: tuple[str, ...] = ()
    timers: tuple[Every, ...] = ()

    def __post_init__(self) -> None:
        types = [h.command.SCHEMA for h in self.handlers]
        duplicates = sorted({t for t in types if types.count(t) > 1})
        if duplicates:
            raise ValueError(f"{self.name}: more than one handler for {', '.join(duplicates)}")

    @property
    def source(self) -> str:
        """The CloudEvents ``ce_source`` of everything the service sends."""
        return f"/services/{self.name}"

    def handler_for(self, schema: str) -> Handler[Any] | None:
        """The handler of command type ``schema``, if the service has one."""
        return next((h for h in self.handlers if schema == h.command.SCHEMA), None)

    def usages(self) -> list[Usage]:
        """The command types handled (fields read), reply types returned, events followed."""
        found: list[Usage] = []
        for h in self.handlers:
            where = f"service {self.name} handles {h.command.SCHEMA}"
            found.append(Usage(h.command.SCHEMA, h.reads(), where))
            found.extend(Usage(r.SCHEMA, (), f"{where}, replies") for r in h.replies)
        for s in self.subscriptions:
            found.append(Usage(s.event.SCHEMA, s.reads, f"service {self.name} follows"))
        return found
