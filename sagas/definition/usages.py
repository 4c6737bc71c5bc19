"""What a definition depends on: message types, and fields it reads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sagas.contracts.record import Record
from sagas.definition.steps import Await, On, template_fields

if TYPE_CHECKING:
    from sagas.definition.saga import Saga


@dataclass(frozen=True, order=True)
class Usage:
    """One message type, or one field of it, that a definition depends on.

    Attributes:
        schema: the Avro full name of the message.
        field: a field the saga reads, or ``None`` for the type itself.
        role: ``"starts"``, ``"sends"``, ``"receives"``, ``"publishes"`` or ``"reads"``.
    """

    schema: str
    field: str | None
    role: str


def all_types(saga: Saga[Any]) -> list[type[Record]]:
    """Every message class the definition mentions, in definition order (repeats kept)."""
    found: list[type[Record]] = [s.event for s in saga.starts]
    for leaf in saga.leaves:
        if not isinstance(leaf, Await):
            found.append(leaf.command.type)
        found.extend(on.type for on in (*leaf.success, *leaf.failure))
        if leaf.compensation is not None:
            comp = leaf.compensation
            found.extend((comp.command.type, *comp.success, *comp.failure))
    found.extend(e.type for e in (saga.on_completed, saga.on_compensated) if e is not None)
    return found


def message_types(saga: Saga[Any]) -> dict[str, type[Record]]:
    """The definition's type registry: message classes by schema full name."""
    return {t.SCHEMA: t for t in all_types(saga)}


def _received(on: On[Any, Any], extra: tuple[str, ...] = ()) -> list[Usage]:
    schema = on.type.SCHEMA
    reads = [Usage(schema, name, "reads") for name in (*on.reads, *extra)]
    return [Usage(schema, None, "receives"), *reads]


def usages(saga: Saga[Any]) -> tuple[Usage, ...]:
    """The sorted, unique usages of ``saga`` (see `Saga.usages`)."""
    found: list[Usage] = []
    for start in saga.starts:
        schema = start.event.SCHEMA
        found.append(Usage(schema, None, "starts"))
        reads = (*template_fields(start.saga_id), *start.reads)
        found.extend(Usage(schema, name, "reads") for name in reads)
    for leaf in saga.leaves:
        correlation: tuple[str, ...] = ()
        if isinstance(leaf, Await):
            correlation = template_fields(leaf.saga_id or saga.starts[0].saga_id)
        else:
            found.append(Usage(leaf.command.type.SCHEMA, None, "sends"))
        for on in (*leaf.success, *leaf.failure):
            found.extend(_received(on, correlation))
        if leaf.compensation is not None:
            comp = leaf.compensation
            found.append(Usage(comp.command.type.SCHEMA, None, "sends"))
            found.extend(Usage(t.SCHEMA, None, "receives") for t in (*comp.success, *comp.failure))
    for emit in (saga.on_completed, saga.on_compensated):
        if emit is not None:
            found.append(Usage(emit.type.SCHEMA, None, "publishes"))
    return tuple(sorted(set(found), key=lambda u: (u.schema, u.field or "", u.role)))
