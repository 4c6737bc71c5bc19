"""The saga definition: a validated, immutable value the state machine interprets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any, Generic, TypeVar

from sagas.contracts import topics
from sagas.contracts.record import Envelope, Record
from sagas.definition.policy import StepKind
from sagas.definition.steps import Await, Emit, Parallel, Start, Step, format_template
from sagas.definition.usages import Usage, message_types, usages
from sagas.definition.validate import validate

D = TypeVar("D")


class Role(StrEnum):
    """What an incoming message means to the step it belongs to."""

    SUCCESS = "success"
    FAILURE = "failure"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


@dataclass(frozen=True)
class Match:
    """The step an incoming message type belongs to, and its role there."""

    step: str
    role: Role


def _roles(leaf: Step[Any] | Await[Any]) -> list[tuple[str, Role]]:
    """The incoming types of one step, by schema, with their role there."""
    found = [(on.type.SCHEMA, Role.SUCCESS) for on in leaf.success]
    found += [(on.type.SCHEMA, Role.FAILURE) for on in leaf.failure]
    if leaf.compensation is not None:
        found += [(t.SCHEMA, Role.COMPENSATED) for t in leaf.compensation.success]
        found += [(t.SCHEMA, Role.COMPENSATION_FAILED) for t in leaf.compensation.failure]
    return found


@dataclass(frozen=True, kw_only=True)
class Saga(Generic[D]):
    """A saga definition. Validated when built: an invalid one raises `DefinitionError`.

    Attributes:
        name: lowercase identifier; the inbox topic is ``sagas.<name>.inbox``.
        version: stored in every instance, so that a runtime can keep older versions.
        data: the saga data class (a frozen dataclass serialisable by the machine).
        starts: the events that start the saga, with the saga id template and initial data.
        steps: steps and parallel groups, run in order.
        deadline: the saga-wide limit, counted from the start. Before the point of no
            return, passing it compensates; after it, the saga is FAILED for an operator.
        on_completed: the domain event published when the saga completes.
        on_compensated: the domain event published when the saga is compensated.
        example: sample data; when given, every builder and condition is called with it
            at definition time, so that a command or compensation that cannot be built
            from the saga data is found before any saga runs.

    Example: the order fulfilment saga, as ``services/definitions/order_fulfilment.py``
    defines it (``OrderData``, its builders and updates, the retry policies and
    ``EXAMPLE`` come from that module)::

        ORDER_FULFILMENT = Saga(
            name="order_fulfilment",
            version=1,
            data=OrderData,
            starts=(
                Start(
                    OrderPlaced,
                    "order:{order_id}",
                    OrderData.from_event,
                    reads=(
                        "customer_id",
                        "items",
                        "total",
                        "currency",
                        "shipping_address",
                        "placed_at",
                    ),
                ),
            ),
            steps=(
                Step(
                    name="reserve_stock",
                    command=Command(ReserveStock, "inventory", reserve_stock),
                    success=(On(StockReserved, with_reservation, reads=("reservation_id",)),),
                    failure=(
                        On(StockUnavailable, out_of_stock, reads=("sku", "available", "requested")),
                    ),
                    compensation=Compensation(
                        command=Command(ReleaseStock, "inventory", release_stock),
                        success=(StockReleased,),
                        retry=UNDO_RETRY,
                    ),
                    retry=FORWARD_RETRY,
                ),
                Step(
                    name="authorize_payment",
                    command=Command(AuthorizePayment, "payments", authorize_payment),
                    success=(
                        On(PaymentAuthorized, with_authorization, reads=("authorization_id",)),
                    ),
                    failure=(On(PaymentDeclined, declined, reads=("reason",)),),
                    compensation=Compensation(
                        command=Command(VoidPayment, "payments", void_payment),
                        success=(PaymentVoided,),
                        retry=UNDO_RETRY,
                    ),
                    retry=FORWARD_RETRY,
                ),
                Step(
                    name="schedule_shipment",
                    command=Command(ScheduleShipment, "shipping", schedule_shipment),
                    success=(On(ShipmentScheduled, with_shipment, reads=("shipment_id",)),),
                    failure=(On(ShipmentFailed, not_shippable, reads=("reason",)),),
                    compensation=Compensation(
                        command=Command(CancelShipment, "shipping", cancel_shipment),
                        success=(ShipmentCancelled,),
                        retry=UNDO_RETRY,
                    ),
                    retry=FORWARD_RETRY,
                ),
                Step(
                    name="capture_payment",
                    kind=StepKind.PIVOT,
                    command=Command(CapturePayment, "payments", capture_payment),
                    success=(On(PaymentCaptured, with_capture, reads=("capture_id",)),),
                    failure=(On(PaymentCaptureFailed, not_captured, reads=("reason",)),),
                    retry=CAPTURE_RETRY,
                ),
            ),
            deadline=timedelta(minutes=15),
            on_completed=Emit(OrderFulfilled, "orders.events", order_fulfilled, key=order_key),
            on_compensated=Emit(OrderCancelled, "orders.events", order_cancelled, key=order_key),
            example=EXAMPLE,
        )

    Capturing the payment is the point of no return (the pivot): until the customer is
    charged, the stock, the authorization and the shipment can all be undone; once
    charged, the order is fulfilled, so ``capture_payment`` has no compensation. A
    later step (say, ``email_receipt``) would be `StepKind.RETRIABLE`.
    """

    name: str
    version: int
    data: type[D]
    starts: tuple[Start[D, Any], ...]
    steps: tuple[Step[D] | Await[D] | Parallel[D], ...]
    deadline: timedelta | None = None
    on_completed: Emit[D, Any] | None = None
    on_compensated: Emit[D, Any] | None = None
    example: D | None = None

    def __post_init__(self) -> None:
        validate(self)

    @property
    def inbox(self) -> str:
        """The topic every message concerning an instance arrives on."""
        return topics.inbox(self.name)

    @property
    def dead_letters(self) -> str:
        """The topic messages the saga cannot use go to, with their reason."""
        return topics.dead_letters(self.name)

    @property
    def source(self) -> str:
        """The CloudEvents ``ce_source`` of everything the saga sends."""
        return f"/sagas/{self.name}"

    @cached_property
    def stages(self) -> tuple[tuple[Step[D] | Await[D], ...], ...]:
        """The steps in order; a parallel group is one stage of several steps."""
        return tuple(s.branches if isinstance(s, Parallel) else (s,) for s in self.steps)

    @cached_property
    def leaves(self) -> tuple[Step[D] | Await[D], ...]:
        """Every step, parallel branches included, in definition order."""
        return tuple(leaf for stage in self.stages for leaf in stage)

    @cached_property
    def _by_name(self) -> dict[str, Step[D] | Await[D]]:
        return {leaf.name: leaf for leaf in self.leaves}

    @cached_property
    def _stage_index(self) -> dict[str, int]:
        return {leaf.name: i for i, stage in enumerate(self.stages) for leaf in stage}

    def step(self, name: str) -> Step[D] | Await[D]:
        """The step called ``name`` (raises KeyError)."""
        return self._by_name[name]

    def stage_of(self, name: str) -> int:
        """The index of the stage holding step ``name``."""
        return self._stage_index[name]

    @cached_property
    def forward_only_from(self) -> int:
        """The first stage after the point of no return (``len(stages)`` when none).

        That is the stage after the pivot, or else the first retriable stage. Once the
        saga has reached it, it can only go forward.
        """
        for i, stage in enumerate(self.stages):
            kinds = {leaf.effective_kind for leaf in stage}
            if StepKind.PIVOT in kinds:
                return i + 1
            if StepKind.RETRIABLE in kinds:
                return i
        return len(self.stages)

    @cached_property
    def matches(self) -> Mapping[str, tuple[Match, ...]]:
        """Incoming message types (by schema) mapped to the steps they belong to, with
        their role there, in definition order.

        An awaited event belongs to one step; a reply type may belong to several (two
        steps sending the same command), and a reply then names the command it answers
        (``Envelope.in_reply_to``).
        """
        found: dict[str, list[Match]] = {}
        for leaf in self.leaves:
            for schema, role in _roles(leaf):
                found.setdefault(schema, []).append(Match(leaf.name, role))
        return {schema: tuple(steps) for schema, steps in found.items()}

    def match(self, schema: str, step: str) -> Match | None:
        """The role of messages of type ``schema`` in step ``step``, if they have one."""
        return next((m for m in self.matches.get(schema, ()) if m.step == step), None)

    def start_for(self, schema: str) -> Start[D, Any] | None:
        """The start declaration for events of type ``schema``, if they start the saga."""
        return next((s for s in self.starts if schema == s.event.SCHEMA), None)

    def route(self, message: Envelope | Record) -> str | None:
        """The saga id a start or choreography event belongs to (``None``: neither).

        The runtime's router uses this to forward events from ``<domain>.events`` to the
        inbox, keyed by saga id. Replies carry their saga id in a header instead.
        """
        record = message.payload if isinstance(message, Envelope) else message
        start = self.start_for(record.SCHEMA)
        if start is not None:
            return format_template(start.saga_id, record)
        for leaf in self.leaves:
            if isinstance(leaf, Await) and any(
                on.type.SCHEMA == record.SCHEMA for on in (*leaf.success, *leaf.failure)
            ):
                return format_template(leaf.saga_id or self.starts[0].saga_id, record)
        return None

    @cached_property
    def message_types(self) -> Mapping[str, type[Record]]:
        """Every message class the definition mentions, by schema (the type registry)."""
        return message_types(self)

    def usages(self) -> tuple[Usage, ...]:
        """The message types this saga sends and receives and the fields it reads.

        Sorted, without duplicates; ``sagas check`` verifies them against the schemas.
        """
        return usages(self)
