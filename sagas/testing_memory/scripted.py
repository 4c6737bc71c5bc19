"""Scripted stand-ins for participant services: `sagas.testing` handlers on the broker.

A `Scripted` answers the commands of the classes it is given the way the framework's
participants answer (a reply keyed like the command, sent to its ``reply_to``, naming it
in ``in_reply_to``; the same answers again for a command id seen before), from a
`sagas.testing.Handler` per class (``reply``, ``script``, ``silent``), as the
`sagas.testing.Harness` takes them. `sagas.participant.memory.MemoryService` asks it
first; the service's own processor gets the commands it leaves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sagas.contracts.codec import Codec
from sagas.contracts.errors import MessageError
from sagas.contracts.record import Envelope, Record
from sagas.definition import Saga, Step
from sagas.participant.processor import Incoming
from sagas.participant.store import Outbound
from sagas.testing import Delivery, Handler


class Scripted:
    """Answers the commands of ``handlers``' classes as a participant would: keyed like
    the command, to its ``reply_to``, naming it in ``in_reply_to``; a command id seen
    before gets the same answers again."""

    def __init__(self, service: str, codec: Codec, handlers: Mapping[type[Record], Handler]):
        self._service = service
        self._codec = codec
        self._handlers = handlers
        self._answered: dict[str, list[Outbound]] = {}
        self._counts: dict[tuple[str | None, str], int] = {}

    def __call__(self, record: Incoming) -> list[Outbound] | None:
        try:
            command = self._codec.decode(record.headers, record.value, topic=record.topic)
        except MessageError:
            return None  # the service dead-letters it, if it runs
        handler = self._handlers.get(type(command.payload))
        if handler is None:
            return None
        if command.id not in self._answered:
            self._answered[command.id] = self._answer(record, command, handler)
        return self._answered[command.id]

    def _answer(self, record: Incoming, command: Envelope, handler: Handler) -> list[Outbound]:
        count = self._counts[command.saga_id, command.type] = (
            self._counts.get((command.saga_id, command.type), 0) + 1
        )
        now = datetime.now(UTC)
        delivery = Delivery(id=command.id, saga_id=command.saga_id or "", count=count, now=now)
        answer = handler(command.payload, delivery)
        records = [] if answer is None else [answer] if isinstance(answer, Record) else answer
        if command.reply_to is None:
            return []
        outs = []
        for i, payload in enumerate(records):
            reply = Envelope(
                id=f"{command.id}:reply" + (f":{i}" if i else ""),
                type=payload.SCHEMA,
                source=f"/services/{self._service}",
                time=now,
                payload=payload,
                saga_id=command.saga_id,
                in_reply_to=command.id,
                traceparent=command.traceparent,
            )
            headers, value = self._codec.encode(reply)
            outs.append(
                Outbound(topic=command.reply_to, key=record.key, value=value, headers=headers)
            )
        return outs


def by_service(
    definitions: Sequence[Saga[Any]], replies: Mapping[type[Record], Handler]
) -> dict[str, dict[type[Record], Handler]]:
    """The scripted handlers by the service each command class goes to."""
    sent_to: dict[type[Record], str] = {}
    for definition in definitions:
        for leaf in definition.leaves:
            if isinstance(leaf, Step):
                sent_to[leaf.command.type] = leaf.command.service
                if leaf.compensation is not None:
                    command = leaf.compensation.command
                    sent_to[command.type] = command.service
    by_service: dict[str, dict[type[Record], Handler]] = {}
    for command_type, handler in replies.items():
        if command_type not in sent_to:
            raise ValueError(f"no saga of the app sends {command_type.__name__}")
        by_service.setdefault(sent_to[command_type], {})[command_type] = handler
    return by_service
