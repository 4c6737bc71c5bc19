"""Topic names: every name the framework reads or writes, and the topic prefix.

The names here are logical. On the broker each carries the configured prefix
(``SAGAS_TOPIC_PREFIX``, several systems or test runs on one cluster): `physical` adds
it and `logical` takes it off, and nothing else does. Pure on purpose: the definitions,
the core and the participants name topics too, and import no Kafka client.
`sagas.runtime.topics` creates the topics.
"""

from __future__ import annotations

from collections.abc import Callable

OUTCOMES = "sagas.events"
"""The saga outcome events (`SagaStarted`, `StepSucceeded`... `SagaCompleted`)."""
ROUTER_DEAD_LETTERS = "sagas.router.dlq"
"""Where domain events the engine cannot read (or route) go."""
READ_MODEL_DEAD_LETTERS = "sagas.readmodel.dlq"
"""Where the read model (dashboard, CLI) puts records of its topics it cannot read."""


def inbox(saga: str) -> str:
    """Everything concerning one saga instance arrives on one partition of this topic."""
    return f"sagas.{saga}.inbox"


def changelog(saga: str) -> str:
    """Compacted; partition p holds the instances of inbox partition p."""
    return f"sagas.{saga}.changelog"


def history(saga: str) -> str:
    """History entries moved out of the instances of inbox partition p (partition p)."""
    return f"sagas.{saga}.history"


def dead_letters(saga: str) -> str:
    """The messages a saga cannot use, with their reason."""
    return f"sagas.{saga}.dlq"


def commands(service: str) -> str:
    """A participant's command topic."""
    return f"{service}.commands"


def events(domain: str) -> str:
    """A domain's events topic."""
    return f"{domain}.events"


def service_dead_letters(service: str) -> str:
    """The records a participant cannot use, with their reason."""
    return f"{service}.dlq"


def is_dead_letters(name: str) -> bool:
    """Whether topic ``name`` (logical or physical) takes dead letters: a saga's, a
    participant's, the router's or the read model's."""
    return name.endswith(".dlq")


def is_changelog(name: str) -> bool:
    """Whether topic ``name`` (logical or physical) is a saga's changelog."""
    return name.endswith(".changelog")


def is_commands(name: str) -> bool:
    """Whether topic ``name`` (logical or physical) is a participant's command topic."""
    return name.endswith(".commands")


def saga_of(name: str, kind: Callable[[str], str]) -> str | None:
    """The saga whose ``kind`` topic ``name`` is, else None.

    ``kind`` is one of this module's saga topics: ``saga_of("sagas.s.history", history)``
    is ``"s"``.
    """
    head, _, tail = kind("\0").partition("\0")  # the name around the saga's
    if name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail):
        return name[len(head) : -len(tail)]
    return None


def physical(prefix: str, name: str) -> str:
    """The broker's name of topic ``name``."""
    return prefix + name


def logical(prefix: str, name: str) -> str | None:
    """The logical name of broker topic ``name``; None when it is not of this prefix."""
    return name[len(prefix) :] if name.startswith(prefix) else None
