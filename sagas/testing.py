"""Run a saga definition without a broker: simulated participants, a virtual clock, faults.

The `Harness` feeds `decide` exactly what the runtime would (start events, replies,
choreography events, fired timers, operator actions) from an in-memory queue ordered by
virtual time, so a test of a whole saga runs in milliseconds::

    declined = PaymentDeclined(order_id="o-1", reason=DeclineReason.INSUFFICIENT_FUNDS)
    harness = Harness(ORDER_FULFILMENT, {
        ReserveStock: reply(lambda c: StockReserved(order_id=c.order_id, reservation_id="r")),
        AuthorizePayment: script(declined),
        ReleaseStock: reply(
            lambda c: StockReleased(order_id=c.order_id, reservation_id=c.reservation_id)
        ),
    })
    saga_id = harness.start(order_placed)  # an OrderPlaced event with order_id "o-1"
    harness.run()
    harness.assert_compensated(saga_id, ["reserve_stock"])

Participants behave like real ones: a command id seen before gets the same replies
again (they dedupe by ``ce_id``), and every reply names the command it answers
(``in_reply_to``). `Faults` adds random latency (hence reordering),
duplicate deliveries and lost replies, drawn from a seeded generator. What the runtime
would dead-letter (an early choreography event dropped) is in `Harness.dead_letters`.

`MemorySystem` (`sagas.testing_memory`) runs a whole app instead: the real engine and
participant services on the in-memory broker, for end-to-end tests without Kafka.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from sagas.contracts.record import Envelope, Record
from sagas.definition import Saga
from sagas.machine import (
    Decision,
    Input,
    OperatorAction,
    Outgoing,
    OutgoingKind,
    SagaInstance,
    SagaState,
    TimerFired,
    decide,
)

if TYPE_CHECKING:
    from sagas.testing_memory import MemorySystem
else:

    def __getattr__(name: str) -> Any:
        # Imported when first asked for: it loads the engine and the Kafka and SQLite
        # clients, which a test of a definition on the Harness does without.
        if name == "MemorySystem":
            from sagas.testing_memory import MemorySystem

            return MemorySystem
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


D = TypeVar("D")

EPOCH = datetime(2030, 1, 1, tzinfo=UTC)

Response = Record | Sequence[Record] | None
"""What a participant answers: one reply, several messages, or nothing (silence)."""


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """A command as a participant receives it.

    Attributes:
        id: the command's ``ce_id``.
        saga_id: the saga that sent it.
        count: how many distinct commands of this type this saga sent so far, this one
            included (1 for the first attempt).
        now: the virtual time of delivery.
    """

    id: str
    saga_id: str
    count: int
    now: datetime


Handler = Callable[[Any, Delivery], Response]
"""A simulated participant's handling of one command type."""


def reply(build: Callable[[Any], Response]) -> Handler:
    """A handler that always answers ``build(command)``."""
    return lambda command, _delivery: build(command)


def script(*responses: Response | Callable[[Any], Response]) -> Handler:
    """A handler answering the n-th command of a saga with the n-th response.

    The last response repeats. A response may be a callable taking the command.
    """

    def handle(command: Any, delivery: Delivery) -> Response:
        chosen = responses[min(delivery.count, len(responses)) - 1]
        return chosen(command) if callable(chosen) else chosen

    return handle


def silent() -> Handler:
    """A participant that never answers (every send times out)."""
    return lambda _command, _delivery: None


@dataclass(frozen=True, kw_only=True)
class Faults:
    """Faults injected into replies and events on their way to the saga's inbox.

    Attributes:
        latency: the range each delivery's delay is drawn from (a range reorders).
        duplicate: the probability that a delivery is delivered twice.
        drop: the probability that a reply is lost (the step then times out).
        seed: the seed of the generator, so a failing run can be replayed.
    """

    latency: tuple[timedelta, timedelta] = (timedelta(milliseconds=5), timedelta(milliseconds=5))
    duplicate: float = 0.0
    drop: float = 0.0
    seed: int = 0


@dataclass(order=True)
class _Item:
    at: datetime
    seq: int
    saga_id: str | None = field(compare=False)
    input: Input = field(compare=False)


class Harness(Generic[D]):
    """An in-memory engine for one definition (see the module docstring).

    Attributes:
        now: the virtual clock.
        sent: every message decided, in order.
        decisions: every (input, decision) pair, in order.
    """

    def __init__(
        self,
        definition: Saga[D],
        participants: Mapping[type[Record], Handler],
        *,
        faults: Faults | None = None,
        start: datetime = EPOCH,
    ) -> None:
        self.definition = definition
        self.participants = dict(participants)
        self.faults = faults or Faults()
        self.now = start
        self.sent: list[Outgoing] = []
        self.decisions: list[tuple[Input, Decision[D]]] = []
        self._random = random.Random(self.faults.seed)
        self._queue: list[_Item] = []
        self._seq = 0
        self._instances: dict[str, SagaInstance[D]] = {}
        self._replies: dict[str, list[Envelope]] = {}
        self._counts: dict[tuple[str, str], int] = {}

    # -- inputs ------------------------------------------------------------------------

    def start(self, event: Record, *, after: timedelta = timedelta(0)) -> str:
        """Deliver a start event after ``after``; returns the saga id it will start."""
        saga_id = self.definition.route(event)
        if saga_id is None or self.definition.start_for(event.SCHEMA) is None:
            raise ValueError(f"{event.SCHEMA} does not start {self.definition.name}")
        self._push(self.now + after, saga_id, self._envelope(event, f"start:{saga_id}", None))
        return saga_id

    def publish(self, event: Record, *, after: timedelta = timedelta(0)) -> None:
        """Deliver a choreography event (routed to its saga like the runtime's router)."""
        saga_id = self.definition.route(event)
        if saga_id is None:
            raise ValueError(f"{event.SCHEMA} concerns no saga of {self.definition.name}")
        self._seq += 1
        self._push(self.now + after, saga_id, self._envelope(event, f"event:{self._seq}", saga_id))

    def operate(
        self, saga_id: str, action: OperatorAction, *, after: timedelta = timedelta(0)
    ) -> None:
        """Deliver an operator action after ``after``."""
        self._push(self.now + after, saga_id, action)

    def send(self, saga_id: str, message: Input, *, after: timedelta = timedelta(0)) -> None:
        """Deliver any input as is (e.g. a hand-made reply envelope)."""
        self._push(self.now + after, saga_id, message)

    # -- running -----------------------------------------------------------------------

    def run(self, *, until: timedelta | None = None, max_steps: int = 100_000) -> None:
        """Process inputs in virtual-time order until none is left (or ``until`` passes)."""
        limit = None if until is None else self.now + until
        for _ in range(max_steps):
            if not self._queue or (limit is not None and self._queue[0].at > limit):
                break
            item = heapq.heappop(self._queue)
            self.now = max(self.now, item.at)
            self._process(item)
        else:
            raise RuntimeError(f"still busy after {max_steps} inputs")
        if limit is not None:
            self.now = max(self.now, limit)

    def _process(self, item: _Item) -> None:
        current = self._instances.get(item.saga_id or "")
        if isinstance(item.input, TimerFired) and (
            current is None or not _pending(current, item.input)
        ):
            return  # cancelled or replaced since it was queued: the runtime drops it too
        decision = decide(self.definition, current, item.input, self.now)
        self.decisions.append((item.input, decision))
        if decision.instance is None:
            return
        instance = decision.instance
        self._instances[instance.saga_id] = instance
        for timer in decision.timers:
            fired = TimerFired(
                kind=timer.kind, step=timer.step, attempt=timer.attempt, due=timer.due
            )
            if not any(q.input == fired and q.saga_id == instance.saga_id for q in self._queue):
                self._push(timer.due, instance.saga_id, fired)
        for message in decision.outgoing:
            self.sent.append(message)
            if message.kind in (OutgoingKind.COMMAND, OutgoingKind.COMPENSATION):
                self._deliver(message)

    def _deliver(self, command: Outgoing) -> None:
        replies = self._replies.get(command.id)
        if replies is None and isinstance(
            command.payload, Record
        ):  # a command id seen before gets the stored replies again
            handler = self.participants.get(type(command.payload))
            if handler is None:
                raise LookupError(f"no participant handles {command.type}")
            key = (command.saga_id, command.type)
            self._counts[key] = self._counts.get(key, 0) + 1
            delivery = Delivery(
                id=command.id, saga_id=command.saga_id, count=self._counts[key], now=self.now
            )
            answer = handler(command.payload, delivery)
            records = (
                [] if answer is None else [answer] if isinstance(answer, Record) else list(answer)
            )
            replies = [
                self._envelope(r, f"{command.id}/reply/{i}", command.saga_id, command.id)
                for i, r in enumerate(records)
            ]
            self._replies[command.id] = replies
        for envelope in replies or ():
            if self._random.random() < self.faults.drop:
                continue
            copies = 2 if self._random.random() < self.faults.duplicate else 1
            for _ in range(copies):
                low, high = self.faults.latency
                delay = low + (high - low) * self._random.random()
                self._push(self.now + delay, command.saga_id, envelope)

    def _push(self, at: datetime, saga_id: str | None, message: Input) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Item(at, self._seq, saga_id, message))

    def _envelope(
        self, record: Record, mid: str, saga_id: str | None, in_reply_to: str | None = None
    ) -> Envelope:
        return Envelope(
            id=mid,
            type=record.SCHEMA,
            source="/testing",
            time=self.now,
            payload=record,
            saga_id=saga_id,
            in_reply_to=in_reply_to,
        )

    # -- outcome -----------------------------------------------------------------------

    def instance(self, saga_id: str) -> SagaInstance[D]:
        """The current instance of ``saga_id`` (raises KeyError if it never started)."""
        return self._instances[saga_id]

    def state(self, saga_id: str) -> SagaState:
        """The current state of ``saga_id``."""
        return self.instance(saga_id).state

    def messages(
        self, saga_id: str | None = None, kind: OutgoingKind | None = None
    ) -> list[Outgoing]:
        """The messages sent, optionally for one saga and of one kind."""
        return [
            m
            for m in self.sent
            if (saga_id is None or m.saga_id == saga_id) and (kind is None or m.kind is kind)
        ]

    def dead_letters(self, saga_id: str | None = None) -> list[Outgoing]:
        """The messages the sagas dropped to their dead-letter topic (each with its
        ``envelope`` and ``reason``), optionally of one saga, in order."""
        return self.messages(saga_id, OutgoingKind.DEAD_LETTER)

    def compensated_steps(self, saga_id: str) -> list[str]:
        """The steps whose compensation was sent, in order, each listed once."""
        steps: list[str] = []
        for m in self.messages(saga_id, OutgoingKind.COMPENSATION):
            if m.step is not None and m.step not in steps:
                steps.append(m.step)
        return steps

    def assert_completed(self, saga_id: str) -> None:
        """Fail unless the saga completed."""
        self._assert_state(saga_id, SagaState.COMPLETED)

    def assert_compensated(self, saga_id: str, steps: Iterable[str] | None = None) -> None:
        """Fail unless the saga was compensated (by undoing exactly ``steps``, in order)."""
        self._assert_state(saga_id, SagaState.COMPENSATED)
        if steps is not None:
            actual, wanted = self.compensated_steps(saga_id), list(steps)
            assert actual == wanted, f"compensated {actual}, expected {wanted}"

    def assert_failed(self, saga_id: str, reason_contains: str = "") -> None:
        """Fail unless the saga is FAILED with a reason containing ``reason_contains``."""
        self._assert_state(saga_id, SagaState.FAILED)
        reason = self.instance(saga_id).reason or ""
        assert reason_contains in reason, f"reason {reason!r} lacks {reason_contains!r}"

    def _assert_state(self, saga_id: str, state: SagaState) -> None:
        instance = self.instance(saga_id)
        if instance.state is not state:
            steps = ", ".join(f"{s.name}={s.status}" for s in instance.steps)
            history = "\n  ".join(f"{h.type}: {h.note}" for h in instance.history)
            raise AssertionError(
                f"{saga_id} is {instance.state} ({instance.reason}), expected {state}; "
                f"steps: {steps}\nhistory:\n  {history}"
            )


def _pending(instance: SagaInstance[Any], fired: TimerFired) -> bool:
    return any(
        (t.kind, t.step, t.attempt, t.due) == (fired.kind, fired.step, fired.attempt, fired.due)
        for t in instance.scheduled_timers
    )


__all__ = [
    "EPOCH",
    "Delivery",
    "Faults",
    "Handler",
    "Harness",
    "MemorySystem",
    "Response",
    "reply",
    "script",
    "silent",
]
