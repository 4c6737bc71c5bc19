"""Building and validating saga definitions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, ClassVar

import pytest

from sagas import (
    Await,
    Command,
    Compensation,
    DefinitionError,
    Emit,
    On,
    Parallel,
    RetryPolicy,
    Start,
    Step,
    StepKind,
    Usage,
)
from sagas.contracts.record import Record
from tests.unit.saga_fixtures import (
    CustomerNotified,
    OrderCancelled,
    OrderData,
    OrderPlaced,
    ParcelDelivered,
    PaymentDeclined,
    ReleaseStock,
    StockReleased,
    cancelled,
    init_order,
    notify_step,
    order_saga,
    parallel_saga,
    payment_step,
    reserve_step,
    shipment_step,
)


def rejected(**changes: Any) -> str:
    with pytest.raises(DefinitionError) as info:
        order_saga(**changes)
    return str(info.value)


def test_a_valid_definition_exposes_its_structure() -> None:
    saga = order_saga()
    assert saga.inbox == "sagas.order_fulfilment.inbox"
    assert [leaf.name for leaf in saga.leaves][:2] == ["reserve_stock", "authorize_payment"]
    assert saga.forward_only_from == 3  # the stage after the pivot
    assert saga.route(OrderPlaced(order_id="o-9", amount=Decimal(1))) == "order:o-9"
    assert "test.ReleaseStock" in saga.message_types


def test_parallel_and_await_structure() -> None:
    saga = parallel_saga()
    assert len(saga.stages) == 2
    assert len(saga.stages[0]) == 2
    assert saga.stage_of("authorize_payment") == 0
    assert saga.route(ParcelDelivered(order_id="o-3")) == "order:o-3"


def test_usages_list_types_and_fields_read() -> None:
    usages = order_saga().usages()
    assert Usage("test.OrderPlaced", "order_id", "reads") in usages
    assert Usage("test.StockReserved", "reservation_id", "reads") in usages
    assert Usage("test.ReserveStock", None, "sends") in usages
    assert Usage("test.ReleaseStock", None, "sends") in usages
    assert Usage("test.OrderFulfilled", None, "publishes") in usages
    assert list(usages) == sorted(usages, key=lambda u: (u.schema, u.field or "", u.role))
    assert Usage("test.ParcelDelivered", "order_id", "reads") in parallel_saga().usages()


def test_problems_name_the_saga_and_the_step() -> None:
    message = rejected(steps=(reserve_step(), reserve_step()))
    assert "saga 'order_fulfilment', step 'reserve_stock': duplicate step name" in message


@dataclass(frozen=True, kw_only=True)
class NoSchema(Record):
    order_id: str


class NotARecord:
    SCHEMA: ClassVar[str] = "test.NotARecord"


@pytest.mark.parametrize("bad", [NoSchema, NotARecord, int])
def test_unknown_message_types_are_rejected(bad: Any) -> None:
    step: Step[OrderData] = Step(
        name="odd",
        kind=StepKind.RETRIABLE,
        command=Command(bad, "odd", lambda d: bad()),
        success=(On(CustomerNotified),),
    )
    assert "is not a message type" in rejected(steps=(reserve_step(), step))


def test_kinds_out_of_order_are_rejected() -> None:
    message = rejected(steps=(shipment_step(), reserve_step()))
    assert "step 'reserve_stock': kinds out of order: compensatable after the pivot step" in message
    assert "kinds out of order" in rejected(steps=(notify_step(), shipment_step()))
    second_pivot = Step(
        name="ship_again",
        kind=StepKind.PIVOT,
        command=shipment_step().command,
        success=(On(CustomerNotified),),
    )
    assert "pivot after the pivot" in rejected(steps=(shipment_step(), second_pivot))


def test_step_without_compensation_must_declare_its_kind() -> None:
    step = Step(name="pay", command=payment_step().command, success=payment_step().success)
    assert "declare kind=StepKind.PIVOT" in rejected(steps=(step,))


def test_pivot_with_compensation_is_rejected() -> None:
    step = Step(
        name="reserve_stock",
        kind=StepKind.PIVOT,
        command=reserve_step().command,
        success=reserve_step().success,
        compensation=reserve_step().compensation,
    )
    assert "a pivot step cannot have a compensation" in rejected(steps=(step,))


def test_empty_and_single_parallel_groups_are_rejected() -> None:
    assert "at least two branches" in rejected(steps=(Parallel(name="p", branches=()),))
    one = Parallel(name="p", branches=(reserve_step(),))
    assert "at least two branches" in rejected(steps=(one,))


def test_pivot_cannot_be_parallel() -> None:
    group = Parallel(name="p", branches=(reserve_step(), shipment_step()))
    assert "a pivot cannot be a parallel branch" in rejected(steps=(group,))


def test_compensation_that_cannot_be_built_from_data_is_rejected() -> None:
    def broken(d: OrderData) -> ReleaseStock:
        return ReleaseStock(reservation_id=d.missing)  # type: ignore[attr-defined]

    step = Step(
        name="reserve_stock",
        command=reserve_step().command,
        success=reserve_step().success,
        compensation=Compensation(
            command=Command(ReleaseStock, "inventory", broken), success=(StockReleased,)
        ),
    )
    message = rejected(steps=(step,))
    assert "step 'reserve_stock': compensation test.ReleaseStock cannot be built" in message


def test_builder_with_the_wrong_arity_is_rejected() -> None:
    def two(d: OrderData, extra: int) -> ReleaseStock:
        raise AssertionError

    step = Step(
        name="reserve_stock",
        command=reserve_step().command,
        success=reserve_step().success,
        compensation=Compensation(
            command=Command(ReleaseStock, "inventory", two),  # type: ignore[arg-type]
            success=(StockReleased,),
        ),
    )
    assert "must accept 1 positional argument" in rejected(steps=(step,), example=None)


def test_a_reply_type_may_belong_to_several_steps_but_an_awaited_event_to_one() -> None:
    twin = Step(
        name="again",
        kind=StepKind.RETRIABLE,
        command=notify_step().command,
        success=(On(CustomerNotified),),
        failure=(On(PaymentDeclined),),
    )
    saga = order_saga(steps=(payment_step(), twin))  # replies name their command
    assert [m.step for m in saga.matches["test.PaymentDeclined"]] == ["authorize_payment", "again"]
    waiting: Await[OrderData] = Await(
        name="declined", kind=StepKind.RETRIABLE, event=On(PaymentDeclined)
    )
    message = rejected(steps=(payment_step(), waiting))
    assert "test.PaymentDeclined is also awaited by step 'authorize_payment'" in message
    twice = Step(
        name="twice",
        kind=StepKind.RETRIABLE,
        command=notify_step().command,
        success=(On(CustomerNotified),),
        failure=(On(CustomerNotified),),
    )
    assert "test.CustomerNotified is listed twice" in rejected(steps=(twice,))


def test_field_reads_and_templates_are_checked() -> None:
    start = Start(OrderPlaced, "order:{customer}", init_order)
    assert "does not have" in rejected(starts=(start,))
    waiting: Await[OrderData] = Await(
        name="delivered", kind=StepKind.RETRIABLE, event=On(ParcelDelivered, reads=("parcel",))
    )
    assert "reads field 'parcel'" in rejected(steps=(reserve_step(), waiting))


def test_policies_timeouts_and_names_are_checked() -> None:
    bad_retry = Step(
        name="Bad Name",
        kind=StepKind.RETRIABLE,
        command=notify_step().command,
        success=(On(CustomerNotified),),
        retry=RetryPolicy(max_attempts=0, jitter=2.0, retry_on=(PaymentDeclined,)),
        timeout=timedelta(0),
    )
    message = rejected(steps=(bad_retry,), deadline=timedelta(0), version=0)
    for expected in (
        "max_attempts must be >= 1",
        "jitter must be within",
        "is not one of the step's failure replies",
        "timeout must be positive",
        "deadline must be positive",
        "version must be a positive int",
        "name must be lowercase",
    ):
        assert expected in message


def test_no_steps_and_no_starts_are_rejected() -> None:
    assert "no steps" in rejected(steps=())
    assert "no start event" in rejected(starts=())


def test_a_step_without_a_policy_gets_its_kinds_default() -> None:
    retriable = Step(
        name="notify",
        kind=StepKind.RETRIABLE,
        command=notify_step().command,
        success=(On(CustomerNotified),),
    )
    assert retriable.retry is None
    assert retriable.effective_retry == RetryPolicy(max_attempts=None)
    assert retriable.effective_retry.allows(10**6)
    pivot = Step(
        name="ship",
        kind=StepKind.PIVOT,
        command=shipment_step().command,
        success=shipment_step().success,
    )
    assert pivot.effective_retry == RetryPolicy()
    assert pivot.effective_retry.max_attempts == 1
    explicit = notify_step()  # retriable, with an explicit bounded policy: allowed
    assert explicit.effective_retry is explicit.retry
    assert explicit.effective_retry.max_attempts == 4


def test_an_end_event_builder_may_take_the_decision_time() -> None:
    def stamped(d: OrderData, now: datetime) -> OrderCancelled:
        return OrderCancelled(order_id=d.order_id, reason=f"at {now.isoformat()}")

    def three(d: OrderData, now: datetime, extra: int) -> OrderCancelled:
        raise AssertionError

    emit = Emit(OrderCancelled, "orders.events", stamped)
    saga = order_saga(on_compensated=emit)
    assert saga.on_compensated is emit
    moment = datetime(2031, 5, 6, tzinfo=UTC)
    data = OrderData(order_id="o-1", amount=Decimal(1))
    assert emit.event(data, moment).reason == "at 2031-05-06T00:00:00+00:00"
    assert Emit(OrderCancelled, "orders.events", cancelled).event(data, moment).reason == (
        "compensated"
    )
    bad = Emit(OrderCancelled, "orders.events", three)  # type: ignore[arg-type]
    assert "build must accept 1 or 2 positional argument(s)" in rejected(on_compensated=bad)


def test_an_unbounded_retry_policy_keeps_its_cap_after_thousands_of_sends() -> None:
    policy = RetryPolicy(max_attempts=None, initial_backoff=timedelta(seconds=1), jitter=0.0)
    assert policy.delay(5000, 0.5) == policy.max_backoff  # 2.0 ** 4999 overflows a float
