"""The least-privilege ACLs of every component, derived from the definitions.

One SCRAM user per component: ``engine`` (the engine and its router, one process),
``ops`` (the CLI), ``dashboard`` (``sagas web``) and one user per participant service,
named like the service. What each may do follows from the saga definitions (which
commands a saga sends, which events it routes and emits) and the participant
definitions (which commands a service handles, which events it follows and publishes),
so a new step or service gets its ACLs without a hand-kept list. docs/security.md shows
the resulting table; `sagas.dev.secure` creates the bindings on the dev broker.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Any

from sagas.contracts import topics
from sagas.definition import Saga, Step
from sagas.runtime.engine import by_name, output_topics
from sagas.runtime.router import event_topics

if TYPE_CHECKING:
    from sagas.app import App


class Resource(IntEnum):
    """Kafka's resource type codes (``org.apache.kafka.common.resource.ResourceType``)."""

    TOPIC = 2
    GROUP = 3
    CLUSTER = 4
    TRANSACTIONAL_ID = 5


class Pattern(IntEnum):
    """Kafka's pattern type codes."""

    LITERAL = 3
    PREFIXED = 4


class Operation(IntEnum):
    """Kafka's ACL operation codes (``org.apache.kafka.common.acl.AclOperation``)."""

    READ = 3
    WRITE = 4
    CREATE = 5
    DESCRIBE = 8
    IDEMPOTENT_WRITE = 12


@dataclass(frozen=True, order=True)
class Acl:
    """One ALLOW binding: ``user`` may ``operation`` on the resource, from any host."""

    user: str
    resource: Resource
    name: str
    pattern: Pattern
    operation: Operation

    @property
    def principal(self) -> str:
        return f"User:{self.user}"

    def describe(self) -> str:
        kind = "prefix" if self.pattern is Pattern.PREFIXED else "name"
        return f"{self.user}: {self.operation.name} {self.resource.name} {kind} {self.name!r}"


ENGINE, OPS, DASHBOARD = "engine", "ops", "dashboard"


def _grant(
    user: str, resource: Resource, name: str, pattern: Pattern, *ops: Operation
) -> list[Acl]:
    return [Acl(user, resource, name, pattern, op) for op in ops]


def _topics(user: str, names: Iterable[str], *ops: Operation) -> list[Acl]:
    found: list[Acl] = []
    for name in sorted(set(names)):
        found += _grant(user, Resource.TOPIC, name, Pattern.LITERAL, *ops)
    return found


R, W, C, D = Operation.READ, Operation.WRITE, Operation.CREATE, Operation.DESCRIBE


def engine_acls(prefix: str, definitions: Sequence[Saga[Any]]) -> list[Acl]:
    """The engine: the ``sagas.`` namespace, commands out, events in.

    The consumer group (``SAGAS_ENGINE_GROUP``) and the transactional ids
    (``SAGAS_TRANSACTIONAL_PREFIX``) must start with ``<prefix>sagas``, as their
    defaults do.
    """
    out = {topics.physical(prefix, t) for d in definitions for t in output_topics(d)}
    routed = {topics.physical(prefix, t) for t in event_topics(by_name(definitions))}
    return [
        *_grant(ENGINE, Resource.TOPIC, f"{prefix}sagas.", Pattern.PREFIXED, R, W, C, D),
        *_topics(ENGINE, out, W, C, D),
        *_topics(ENGINE, routed - out, R, C, D),
        *_topics(ENGINE, routed & out, R),
        *_grant(ENGINE, Resource.GROUP, f"{prefix}sagas", Pattern.PREFIXED, R, D),
        *_grant(ENGINE, Resource.TRANSACTIONAL_ID, f"{prefix}sagas", Pattern.PREFIXED, W, D),
        *_grant(
            ENGINE, Resource.CLUSTER, "kafka-cluster", Pattern.LITERAL, Operation.IDEMPOTENT_WRITE
        ),
    ]


def operator_acls(user: str, prefix: str) -> list[Acl]:
    """The CLI and the dashboard: read the changelogs, dead letters and outcomes; act.

    Operator actions and dead-letter replays are records on the saga topics, so both
    may write there; they read without a consumer group.
    """
    return _grant(user, Resource.TOPIC, f"{prefix}sagas.", Pattern.PREFIXED, R, W, D)


def commanded_by(definitions: Sequence[Saga[Any]]) -> dict[str, set[str]]:
    """Service -> the sagas that send it commands (and so read its replies)."""
    found: dict[str, set[str]] = {}
    for d in definitions:
        for leaf in d.leaves:
            services = []
            if isinstance(leaf, Step):
                services.append(leaf.command.service)
            if leaf.compensation is not None:
                services.append(leaf.compensation.command.service)
            for s in services:
                found.setdefault(s, set()).add(d.name)
    return found


def service_acls(
    participant: Any,
    prefix: str,
    definitions: Sequence[Saga[Any]],
    group: str,
) -> list[Acl]:
    """A participant service: its commands in, replies to the sagas that command it.

    Args:
        participant: a `sagas.participant.Participant`.
        prefix: the topic prefix.
        definitions: the sagas (to find the inboxes it replies to).
        group: its consumer group (also faust's app id, the prefix of its internal
            topics and transactional ids).
    """
    name: str = participant.name
    own_events = {topics.events(name), *participant.publishes}
    followed = {s.topic for s in participant.subscriptions}
    inboxes = {topics.inbox(s) for s in commanded_by(definitions).get(name, set())}
    found = [
        *_topics(name, [topics.physical(prefix, topics.service_dead_letters(name))], W, C, D),
        *_topics(name, [topics.physical(prefix, t) for t in own_events], W, C, D),
        *_topics(name, [topics.physical(prefix, t) for t in followed - own_events], R, C, D),
        *_topics(name, [topics.physical(prefix, t) for t in followed & own_events], R),
        *_topics(name, [topics.physical(prefix, t) for t in inboxes], W, D),
        # faust's own topics (<group>-__assignor-__leader) and transactional ids.
        *_grant(name, Resource.TOPIC, f"{group}-", Pattern.PREFIXED, R, W, C, D),
        *_grant(name, Resource.GROUP, group, Pattern.LITERAL, R, D),
        *_grant(name, Resource.TRANSACTIONAL_ID, f"{group}-", Pattern.PREFIXED, W, D),
        *_grant(
            name, Resource.CLUSTER, "kafka-cluster", Pattern.LITERAL, Operation.IDEMPOTENT_WRITE
        ),
    ]
    if participant.handlers:
        found += _topics(name, [topics.physical(prefix, topics.commands(name))], R, C, D)
    return sorted(found)


def all_acls(
    prefix: str,
    definitions: Sequence[Saga[Any]],
    participants: Sequence[Any],
) -> dict[str, list[Acl]]:
    """User -> its bindings, for the engine, the operators and every participant.

    Services use their default consumer group ``<prefix><name>-service``.
    """
    table = {
        ENGINE: engine_acls(prefix, definitions),
        OPS: operator_acls(OPS, prefix),
        DASHBOARD: operator_acls(DASHBOARD, prefix),
    }
    for p in participants:
        table[p.name] = service_acls(p, prefix, definitions, f"{prefix}{p.name}-service")
    return table


def app_acls(app: App, prefix: str = "") -> dict[str, list[Acl]]:
    """`all_acls` of an app's sagas and participants."""
    return all_acls(prefix, app.sagas, app.participants)
