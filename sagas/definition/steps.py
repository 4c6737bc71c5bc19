"""The building blocks of a saga definition: messages, steps and parallel groups.

Every class here is a frozen dataclass holding types and pure functions; nothing is
registered anywhere. ``D`` is the saga's data type (a frozen dataclass), ``R`` a message
type (a `Record` subclass).
"""

from __future__ import annotations

import inspect
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, Generic, TypeVar, cast

from sagas.contracts import topics
from sagas.contracts.record import Record
from sagas.definition.policy import RetryPolicy, StepKind

D = TypeVar("D")
R = TypeVar("R", bound=Record)

DEFAULT_TIMEOUT = timedelta(seconds=30)
SEND_ONCE = RetryPolicy()
"""The default policy of a compensatable or pivot step: one send."""
RETRY_FOREVER = RetryPolicy(max_attempts=None)
"""The default policy of a retriable step: retried until it succeeds."""


def template_fields(template: str) -> tuple[str, ...]:
    """The field names a saga id template such as ``"order:{order_id}"`` reads."""
    names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    return tuple(names)


def format_template(template: str, record: Record) -> str:
    """Fill a saga id template with the fields of ``record``."""
    return template.format_map({name: getattr(record, name) for name in template_fields(template)})


@dataclass(frozen=True)
class On(Generic[D, R]):
    """A message a step waits for, and what it contributes to the saga data.

    Attributes:
        type: the message class.
        update: a pure function ``(data, message) -> data``; ``None`` leaves data as is.
        reads: the fields of the message ``update`` reads, declared so that
            ``sagas check`` can verify them against the schema.
    """

    type: type[R]
    update: Callable[[D, R], D] | None = None
    reads: tuple[str, ...] = ()

    def apply(self, data: D, message: Record) -> D:
        """The saga data after ``message`` (of this type) arrived."""
        if self.update is None:
            return data
        return self.update(data, message)  # type: ignore[arg-type]  # matched on self.type


@dataclass(frozen=True)
class Command(Generic[D, R]):
    """A command a step sends, built from the saga data.

    Attributes:
        type: the command class.
        service: the participant; the command goes to the topic ``<service>.commands``.
        build: a pure function ``data -> command``.
    """

    type: type[R]
    service: str
    build: Callable[[D], R]

    @property
    def topic(self) -> str:
        """The participant's command topic."""
        return topics.commands(self.service)


@dataclass(frozen=True, kw_only=True)
class Compensation(Generic[D]):
    """How a step is undone: a command, the replies it waits for, and its retries.

    Every failure reply and timeout is retried until ``retry`` is exhausted; then the saga
    is FAILED and waits for an operator.
    """

    command: Command[D, Any]
    success: tuple[type[Record], ...]
    failure: tuple[type[Record], ...] = ()
    timeout: timedelta | None = DEFAULT_TIMEOUT
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(max_attempts=5))


@dataclass(frozen=True, kw_only=True)
class Step(Generic[D]):
    """Orchestration: send a command, then wait for a success or a failure reply.

    Attributes:
        name: unique within the saga.
        command: the command to send.
        success: the success replies; the one that arrives updates the data.
        failure: the failure replies.
        compensation: how to undo the step, for compensatable steps.
        kind: compensatable, pivot or retriable. ``None`` means compensatable when there
            is a compensation; a step without one must say what it is.
        timeout: how long one send waits for a reply; ``None`` waits forever.
        retry: when and how the command is sent again; ``None`` means the kind's default
            (see `effective_retry`).
        when: a condition on the data, evaluated when the step is reached; the step is
            skipped when it returns False.
    """

    name: str
    command: Command[D, Any]
    success: tuple[On[D, Any], ...]
    failure: tuple[On[D, Any], ...] = ()
    compensation: Compensation[D] | None = None
    kind: StepKind | None = None
    timeout: timedelta | None = DEFAULT_TIMEOUT
    retry: RetryPolicy | None = None
    when: Callable[[D], bool] | None = None

    @property
    def effective_kind(self) -> StepKind | None:
        """The declared kind, or the one implied by having a compensation."""
        if self.kind is not None:
            return self.kind
        return StepKind.COMPENSATABLE if self.compensation is not None else None

    @property
    def effective_retry(self) -> RetryPolicy:
        """The declared policy, or the kind's default.

        A retriable step (after the point of no return) is retried until it succeeds:
        ``RetryPolicy(max_attempts=None)``, every failure and timeout retried with
        exponential backoff. A compensatable step or the pivot is sent once:
        ``RetryPolicy()`` (a timeout or failure fails it, and the saga compensates).
        """
        if self.retry is not None:
            return self.retry
        if self.effective_kind is StepKind.RETRIABLE:
            return RETRY_FOREVER
        return SEND_ONCE


@dataclass(frozen=True, kw_only=True)
class Await(Generic[D]):
    """Choreography: wait for an event a service publishes on its own.

    The event reaches the saga through its saga id, computed from the event's fields
    with ``saga_id`` (a template like ``"order:{order_id}"``; by default the template of
    the saga's first start). An event that arrives before the step is reached is kept
    and used when it is.

    Attributes:
        name: unique within the saga.
        event: the event that completes the step, and what it contributes to the data.
        failure: events that fail the step.
        saga_id: the template correlating the events to the saga.
        compensation, kind, timeout, when: as for `Step` (nothing is ever resent).
    """

    name: str
    event: On[D, Any]
    failure: tuple[On[D, Any], ...] = ()
    saga_id: str | None = None
    compensation: Compensation[D] | None = None
    kind: StepKind | None = None
    timeout: timedelta | None = DEFAULT_TIMEOUT
    when: Callable[[D], bool] | None = None

    @property
    def success(self) -> tuple[On[D, Any], ...]:
        """The event that completes the step, as a one-element tuple (like `Step`)."""
        return (self.event,)

    @property
    def effective_kind(self) -> StepKind | None:
        """The declared kind, or the one implied by having a compensation."""
        if self.kind is not None:
            return self.kind
        return StepKind.COMPENSATABLE if self.compensation is not None else None


@dataclass(frozen=True, kw_only=True)
class Parallel(Generic[D]):
    """Steps started together; all must succeed.

    When one fails, the branches not yet done are stopped (no further sends; a reply
    still in flight is waited for) and every branch that succeeded is compensated, all
    of them at once (they are independent), before the stages before the group.
    Branches are compensatable, or all retriable; a pivot cannot be parallel.
    """

    name: str
    branches: tuple[Step[D] | Await[D], ...]


@dataclass(frozen=True)
class Start(Generic[D, R]):
    """An event type that starts the saga.

    Attributes:
        event: the event class.
        saga_id: a template over the event's fields, e.g. ``"order:{order_id}"``.
        init: a pure function ``event -> data``, the saga's initial data.
        reads: further fields ``init`` reads (the template's fields are implied).
    """

    event: type[R]
    saga_id: str
    init: Callable[[R], D]
    reads: tuple[str, ...] = ()


@dataclass(frozen=True)
class Emit(Generic[D, R]):
    """A domain event the saga publishes at its end, built from the saga data.

    ``build`` gets the saga data, and also the time of the decision that ends the saga
    when it accepts two positional arguments: ``build(data, now)``. That is the time to
    put in a field such as ``fulfilled_at`` (builders are pure and read no clock; the
    saga data knows only the times of earlier messages).

    Attributes:
        type: the event class.
        topic: where it goes, e.g. ``"orders.events"``.
        build: a pure function ``data -> event`` or ``(data, now) -> event``.
        key: a pure function ``data -> key`` (the aggregate id); the saga id by default.
    """

    type: type[R]
    topic: str
    build: Callable[[D], R] | Callable[[D, datetime], R]
    key: Callable[[D], str] | None = None

    @cached_property
    def takes_time(self) -> bool:
        """Whether ``build`` is called with the decision time too (it accepts two
        positional arguments)."""
        return accepts(self.build, 2)

    def event(self, data: D, now: datetime) -> R:
        """The event, built from ``data`` (and ``now`` when ``build`` takes it)."""
        if self.takes_time:
            return cast(Callable[[D, datetime], R], self.build)(data, now)
        return cast(Callable[[D], R], self.build)(data)


def accepts(fn: Callable[..., object], n: int) -> bool:
    """Whether ``fn`` can be called with ``n`` positional arguments (False when its
    signature cannot be read)."""
    try:
        inspect.signature(fn).bind(*([None] * n))
    except (TypeError, ValueError):
        return False
    return True
