"""Which sagas a domain event concerns: start events and choreography events.

The engine reads the ``<domain>.events`` topics its sagas start from or wait for, in
the same units as the inboxes (`sagas.runtime.partitioning`). For each event, `routes`
names every saga it concerns and the saga id; the worker decides it at once when the
saga lives in the unit that read it, and otherwise forwards it (bytes untouched,
``saga_id`` header set) to the saga's inbox partition.

Every version an engine runs is routed, not only the newest: an instance finishes on
the version it started with, and an older version may wait for an event the newer one
no longer does. Only the newest version starts sagas.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sagas.contracts.record import Envelope
from sagas.definition import Await, Saga, format_template
from sagas.runtime import topics


@dataclass(frozen=True)
class Route:
    """An event concerns saga ``saga`` (by name), instance ``saga_id``."""

    saga: str
    saga_id: str


def routed_types(versions: Mapping[int, Saga[Any]]) -> set[str]:
    """The event types that reach a saga through the router: the newest version's start
    events and every version's awaited events."""
    newest = versions[max(versions)]
    types = {start.event.SCHEMA for start in newest.starts}
    for definition in versions.values():
        for leaf in definition.leaves:
            if isinstance(leaf, Await):
                types.update(on.type.SCHEMA for on in (*leaf.success, *leaf.failure))
    return types


def event_topics(definitions: Mapping[str, Mapping[int, Saga[Any]]]) -> list[str]:
    """``<domain>.events`` for every start or choreography event of the definitions."""
    return sorted(
        {
            topics.events(t.split(".", 1)[0])
            for versions in definitions.values()
            for t in routed_types(versions)
        }
    )


class Router:
    """Routes decoded events to the sagas they concern.

    Args:
        definitions: every version of every saga, by name and version.
    """

    def __init__(self, definitions: Mapping[str, Mapping[int, Saga[Any]]]) -> None:
        self._templates: dict[str, list[tuple[str, str]]] = {}
        for name, versions in sorted(definitions.items()):
            newest = versions[max(versions)]
            for start in newest.starts:
                self._add(start.event.SCHEMA, name, start.saga_id)
            for definition in versions.values():
                for leaf in definition.leaves:
                    if not isinstance(leaf, Await):
                        continue
                    template = leaf.saga_id or definition.starts[0].saga_id
                    for on in (*leaf.success, *leaf.failure):
                        self._add(on.type.SCHEMA, name, template)

    def _add(self, schema: str, saga: str, template: str) -> None:
        found = self._templates.setdefault(schema, [])
        if (saga, template) not in found:
            found.append((saga, template))

    def routes(self, envelope: Envelope) -> list[Route]:
        """Every saga ``envelope`` concerns (none: no saga cares about its type).

        Raises:
            AttributeError, KeyError, ValueError: a template reads what the event lacks
                (the worker dead-letters it).
        """
        found: list[Route] = []
        for saga, template in self._templates.get(envelope.type, ()):
            route = Route(saga, format_template(template, envelope.payload))
            if route not in found:
                found.append(route)
        return found
