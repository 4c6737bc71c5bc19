"""Scenarios of the state machine, one input at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from sagas import (
    Abort,
    DefinitionError,
    Pause,
    Resume,
    Retry,
    RetryNow,
    Saga,
    SagaState,
    SkipStep,
    StepStatus,
    TimerFired,
    Unpause,
    decide,
)
from sagas.contracts.record import Envelope, Record
from sagas.machine import Decision, OutgoingKind, SagaInstance, Timer, TimerKind
from tests.unit.saga_fixtures import (
    T0,
    CommandFailed,
    CustomerNotified,
    GatewayBusy,
    NotifyFailed,
    OrderData,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentVoided,
    ReleaseRefused,
    ShipmentRejected,
    ShipmentScheduled,
    StockReleased,
    StockReserved,
    StockUnavailable,
    envelope,
    order_saga,
    parallel_saga,
    placed,
)

SAGA = order_saga()
Inst = SagaInstance[OrderData]


class Driver:
    """Feeds inputs one by one, keeping the latest instance and decision."""

    def __init__(self, saga: Saga[OrderData] = SAGA) -> None:
        self.saga = saga
        self.now = T0
        self.n = 0
        first = decide(saga, None, placed(), self.now)
        assert first.instance is not None
        self.instance: Inst = first.instance
        self.last: Decision[OrderData] = first

    def give(self, item: Record | Any, *, after: timedelta = timedelta(0)) -> Decision[OrderData]:
        self.now += after
        if isinstance(item, Record):
            self.n += 1
            item = envelope(item, f"m{self.n}", at=self.now)
        decision = decide(self.saga, self.instance, item, self.now)
        assert decision.instance is not None
        self.instance, self.last = decision.instance, decision
        return decision

    def fire(self, kind: TimerKind, step: str | None = None) -> Decision[OrderData]:
        timer = next(t for t in self.instance.timers if t.kind is kind and t.step == step)
        self.now = max(self.now, timer.due)
        return self.give(fired(timer))

    def status(self, step: str) -> StepStatus:
        return self.instance.step(step).status

    def sent(self, kind: OutgoingKind | None = None) -> list[str]:
        return [m.id for m in self.last.outgoing if kind is None or m.kind is kind]


def fired(timer: Timer) -> TimerFired:
    return TimerFired(kind=timer.kind, step=timer.step, attempt=timer.attempt, due=timer.due)


def reserved() -> StockReserved:
    return StockReserved(order_id="o-1", reservation_id="r-1")


def to_pivot(d: Driver) -> None:
    d.give(reserved())
    d.give(PaymentAuthorized(order_id="o-1", authorization_id="a-1"))


def test_start_sends_the_first_command_with_deterministic_id_and_inbox() -> None:
    d = Driver()
    command = next(m for m in d.last.outgoing if m.kind is OutgoingKind.COMMAND)
    assert command.id == "order:o-1:reserve_stock:1"
    assert command.topic == "inventory.commands"
    assert command.key == "order:o-1"
    assert command.reply_to == "sagas.order_fulfilment.inbox"
    assert command.source == "/sagas/order_fulfilment"
    assert [m.type for m in d.last.outgoing] == ["sagas.SagaStarted", "test.ReserveStock"]
    kinds = {t.kind for t in d.last.timers}
    assert kinds == {TimerKind.DEADLINE, TimerKind.TIMEOUT}


def test_happy_path_completes_and_publishes_the_end_event() -> None:
    d = Driver()
    to_pivot(d)
    assert d.instance.data.authorization_id == "a-1"
    d.give(ShipmentScheduled(order_id="o-1"))
    d.give(CustomerNotified(order_id="o-1"))
    assert d.instance.state is SagaState.COMPLETED
    assert d.instance.completed == (
        "reserve_stock",
        "authorize_payment",
        "schedule_shipment",
        "notify_customer",
    )
    end = [m for m in d.last.outgoing if m.kind is OutgoingKind.DOMAIN_EVENT]
    assert [(m.topic, m.key, m.type) for m in end] == [
        ("orders.events", "o-1", "test.OrderFulfilled")
    ]
    assert d.last.timers == ()


def test_failure_compensates_completed_steps_in_reverse_order() -> None:
    d = Driver()
    to_pivot(d)
    d.give(ShipmentRejected(order_id="o-1"))
    assert d.instance.state is SagaState.COMPENSATING
    assert d.sent(OutgoingKind.COMPENSATION) == ["order:o-1:authorize_payment:compensate:1"]
    d.give(PaymentVoided(authorization_id="a-1"))
    assert d.sent(OutgoingKind.COMPENSATION) == ["order:o-1:reserve_stock:compensate:1"]
    d.give(StockReleased(reservation_id="r-1"))
    assert d.instance.state is SagaState.COMPENSATED
    assert [m.type for m in d.last.outgoing] == ["test.OrderCancelled", "sagas.SagaCompensated"]
    assert d.instance.failed_step == "schedule_shipment"


def test_retryable_failure_backs_off_then_sends_a_new_attempt() -> None:
    d = Driver()
    d.give(reserved())
    d.give(GatewayBusy(order_id="o-1"))
    assert d.status("authorize_payment") is StepStatus.RETRYING
    retry = d.fire(TimerKind.RETRY, "authorize_payment")
    assert [m.id for m in retry.outgoing] == ["order:o-1:authorize_payment:2"]


def test_non_retryable_failure_fails_the_step_at_once() -> None:
    d = Driver()
    d.give(reserved())
    d.give(PaymentDeclined(order_id="o-1"))
    assert d.status("authorize_payment") is StepStatus.FAILED
    assert d.instance.state is SagaState.COMPENSATING


def test_backoff_is_exponential_capped_and_deterministic() -> None:
    policy = SAGA.step("authorize_payment").retry  # type: ignore[union-attr]
    assert policy.delay(1, 0.0) == timedelta(seconds=1)
    assert policy.delay(3, 0.0) == timedelta(seconds=4)
    assert replace(policy, max_backoff=timedelta(seconds=3)).delay(5, 0.0) == timedelta(seconds=3)
    assert policy.delay(2, 0.5) == timedelta(seconds=2 * (1 - 0.2 * 0.5))
    d1, d2 = Driver(), Driver()
    for d in (d1, d2):
        d.give(reserved())
        d.give(GatewayBusy(order_id="o-1"))
    assert d1.instance == d2.instance


def test_timeout_resends_the_same_command_id_then_fails_and_compensates_it() -> None:
    d = Driver()
    d.fire(TimerKind.TIMEOUT, "reserve_stock")
    assert d.instance.step("reserve_stock").unanswered
    resend = d.fire(TimerKind.RETRY, "reserve_stock")
    assert d.sent(OutgoingKind.COMMAND) == ["order:o-1:reserve_stock:1"]
    assert resend.instance is not None
    assert resend.instance.step("reserve_stock").sends == 2
    d.fire(TimerKind.TIMEOUT, "reserve_stock")
    # Failed, but the participant may have reserved after all: it is undone.
    [release] = [m for m in d.last.outgoing if m.kind is OutgoingKind.COMPENSATION]
    assert release.id == "order:o-1:reserve_stock:compensate:1"
    assert release.compensates == ("order:o-1:reserve_stock:1",)
    assert d.instance.state is SagaState.COMPENSATING
    d.give(StockReleased(reservation_id="?"))
    assert d.instance.state is SagaState.COMPENSATED
    assert d.instance.completed == ()  # it never succeeded


def test_a_step_failed_by_its_participant_is_not_compensated() -> None:
    d = Driver()
    d.fire(TimerKind.TIMEOUT, "reserve_stock")
    d.fire(TimerKind.RETRY, "reserve_stock")
    d.give(StockUnavailable(order_id="o-1"))  # a definitive answer to the resent command
    assert not d.instance.step("reserve_stock").unanswered
    assert d.instance.state is SagaState.COMPENSATED
    assert d.sent(OutgoingKind.COMPENSATION) == []


def test_compensation_names_every_command_sent_for_the_step() -> None:
    d = Driver()
    d.give(reserved())
    d.give(GatewayBusy(order_id="o-1"))
    d.fire(TimerKind.RETRY, "authorize_payment")
    d.give(PaymentAuthorized(order_id="o-1", authorization_id="a-1"))
    d.give(ShipmentRejected(order_id="o-1"))
    [void] = [m for m in d.last.outgoing if m.kind is OutgoingKind.COMPENSATION]
    assert void.compensates == (
        "order:o-1:authorize_payment:1",
        "order:o-1:authorize_payment:2",
    )


def test_reply_to_an_earlier_send_while_waiting_to_retry_counts() -> None:
    d = Driver()
    d.fire(TimerKind.TIMEOUT, "reserve_stock")
    d.give(reserved())
    assert d.status("reserve_stock") is StepStatus.SUCCEEDED
    assert not any(t.kind is TimerKind.RETRY for t in d.instance.timers)


def test_duplicate_changes_nothing_but_the_history() -> None:
    d = Driver()
    d.give(reserved())
    before = d.instance
    again = decide(SAGA, before, envelope(reserved(), "m1"), d.now)
    assert again.ignored == "duplicate"
    assert again.outgoing == ()
    assert again.instance is not None
    assert replace(again.instance, history=before.history) == replace(before, updated=d.now)
    assert again.instance.history[-1].note == "ignored: duplicate"


def test_late_reply_is_ignored_and_recorded() -> None:
    d = Driver()
    d.give(reserved())
    late = d.give(StockReserved(order_id="o-1", reservation_id="r-2"))
    assert late.ignored is not None
    assert late.ignored.startswith("late")
    assert d.instance.data.reservation_id == "r-1"


def test_deadline_before_the_pivot_compensates() -> None:
    d = Driver()
    d.give(reserved())
    d.fire(TimerKind.DEADLINE)
    # the payment command is in flight: compensation waits for its outcome
    assert d.instance.state is SagaState.COMPENSATING
    assert d.sent(OutgoingKind.COMPENSATION) == []
    d.give(PaymentAuthorized(order_id="o-1", authorization_id="a-1"))
    assert d.sent(OutgoingKind.COMPENSATION) == ["order:o-1:authorize_payment:compensate:1"]


def test_pivot_success_during_compensation_calls_it_off() -> None:
    d = Driver()
    to_pivot(d)
    d.give(Abort(id="op-1", reason="customer asked"))
    assert d.instance.state is SagaState.COMPENSATING
    d.give(ShipmentScheduled(order_id="o-1"))
    assert d.instance.state is SagaState.RUNNING
    assert d.sent(OutgoingKind.COMMAND) == ["order:o-1:notify_customer:1"]


def test_abort_after_the_pivot_is_rejected() -> None:
    d = Driver()
    to_pivot(d)
    d.give(ShipmentScheduled(order_id="o-1"))
    rejected = d.give(Abort(id="op-1"))
    assert rejected.ignored is not None
    assert "point of no return" in rejected.ignored


def test_retriable_step_exhausted_fails_then_operator_retry_completes() -> None:
    d = Driver()
    to_pivot(d)
    d.give(ShipmentScheduled(order_id="o-1"))
    for _ in range(3):
        d.give(NotifyFailed(order_id="o-1"))
        d.fire(TimerKind.RETRY, "notify_customer")
    d.give(NotifyFailed(order_id="o-1"))
    assert d.instance.state is SagaState.FAILED
    assert "point of no return" in (d.instance.reason or "")
    assert d.give(Resume(id="op-0")).ignored is not None
    d.give(Retry(id="op-1"))
    assert d.sent(OutgoingKind.COMMAND) == ["order:o-1:notify_customer:5"]
    d.give(CustomerNotified(order_id="o-1"))
    assert d.instance.state is SagaState.COMPLETED


def test_failing_compensation_leaves_failed_then_resume_finishes() -> None:
    d = Driver()
    d.give(reserved())
    d.give(PaymentDeclined(order_id="o-1"))
    for _ in range(2):
        d.give(ReleaseRefused(reservation_id="r-1"))
        d.fire(TimerKind.COMPENSATION_RETRY, "reserve_stock")
    d.give(ReleaseRefused(reservation_id="r-1"))
    assert d.instance.state is SagaState.FAILED
    assert d.instance.failed_in_compensation
    assert d.status("reserve_stock") is StepStatus.COMPENSATION_FAILED
    d.give(Resume(id="op-1"))
    assert d.sent(OutgoingKind.COMPENSATION) == ["order:o-1:reserve_stock:compensate:4"]
    d.give(StockReleased(reservation_id="r-1"))
    assert d.instance.state is SagaState.COMPENSATED


def test_pause_holds_sends_and_timers_until_unpause() -> None:
    d = Driver()
    d.give(Pause(id="op-1"))
    assert d.last.timers == ()
    d.give(reserved())
    assert d.sent() == [m for m in d.sent() if "StepSucceeded" in m]
    late_timer = next(t for t in d.instance.timers if t.kind is TimerKind.DEADLINE)
    d.give(Unpause(id="op-2"), after=timedelta(minutes=5))
    assert d.sent(OutgoingKind.COMMAND) == ["order:o-1:authorize_payment:1"]
    assert late_timer in d.instance.timers


def test_timer_due_while_paused_fires_on_unpause() -> None:
    d = Driver()
    d.give(Pause(id="op-1"))
    d.give(Unpause(id="op-2"), after=timedelta(minutes=2))
    assert d.status("reserve_stock") is StepStatus.RETRYING


def test_retry_now_skips_the_backoff() -> None:
    d = Driver()
    d.give(reserved())
    d.give(GatewayBusy(order_id="o-1"))
    d.give(RetryNow(id="op-1", step="authorize_payment"))
    assert d.sent(OutgoingKind.COMMAND) == ["order:o-1:authorize_payment:2"]
    assert d.give(RetryNow(id="op-2")).ignored is not None


def test_skip_step_with_a_supplied_result_updates_data() -> None:
    d = Driver()
    result = StockReserved(order_id="o-1", reservation_id="manual")
    d.give(SkipStep(id="op-1", step="reserve_stock", result=result))
    assert d.instance.data.reservation_id == "manual"
    assert d.status("reserve_stock") is StepStatus.SUCCEEDED
    assert d.sent(OutgoingKind.COMMAND) == ["order:o-1:authorize_payment:1"]
    wrong = d.give(SkipStep(id="op-2", step="authorize_payment", result=result))
    assert wrong.ignored is not None


def test_generic_failure_reply_names_its_command() -> None:
    d = Driver()
    d.give(CommandFailed(command_id="order:o-1:reserve_stock:1", reason="boom", retryable=True))
    assert d.status("reserve_stock") is StepStatus.RETRYING
    assert d.instance.timers[-1].attempt == 2
    stale = d.give(
        CommandFailed(command_id="order:o-1:reserve_stock:1", reason="x", retryable=False)
    )
    assert stale.ignored is not None


def test_stale_timer_and_foreign_messages_are_ignored() -> None:
    d = Driver()
    gone = TimerFired(kind=TimerKind.TIMEOUT, step="reserve_stock", attempt=9, due=T0)
    assert d.give(gone).ignored == "stale timer"
    other = Envelope(
        id="x",
        type=reserved().SCHEMA,
        source="/t",
        time=T0,
        payload=reserved(),
        saga_id="order:o-2",
    )
    assert d.give(other).ignored is not None
    assert d.give(placed()).ignored is not None  # same id: duplicate start


def test_no_instance_for_a_reply_and_wrong_version() -> None:
    nothing = decide(SAGA, None, envelope(reserved(), "m1"), T0)
    assert nothing.instance is None
    assert nothing.ignored is not None
    d = Driver()
    with pytest.raises(DefinitionError):
        decide(order_saga(version=2), d.instance, envelope(reserved(), "m1"), T0)


def test_history_records_every_input() -> None:
    d = Driver()
    d.give(reserved())
    d.give(reserved())
    assert [h.seq for h in d.instance.history] == [0, 1, 2]
    assert d.instance.history[0].sent == ("order:o-1:0.0:SagaStarted", "order:o-1:reserve_stock:1")


def test_the_branches_of_a_parallel_stage_are_compensated_together() -> None:
    d = Driver(parallel_saga())
    d.give(reserved())
    d.give(PaymentAuthorized(order_id="o-1", authorization_id="a-1"))
    assert d.status("delivered") is StepStatus.RUNNING
    d.give(Abort(id="op-1"))
    assert d.sent(OutgoingKind.COMPENSATION) == [
        "order:o-1:reserve_stock:compensate:1",
        "order:o-1:authorize_payment:compensate:1",
    ]
    d.give(PaymentVoided(authorization_id="a-1"))
    assert d.sent() == []
    assert d.instance.state is SagaState.COMPENSATING  # the stage waits for every branch
    d.give(StockReleased(reservation_id="r-1"))
    assert d.instance.state is SagaState.COMPENSATED


def test_a_branch_compensation_failing_for_good_lets_its_sibling_finish() -> None:
    d = Driver(parallel_saga())
    d.give(reserved())
    d.give(PaymentAuthorized(order_id="o-1", authorization_id="a-1"))
    d.give(Abort(id="op-1"))
    for _ in range(2):
        d.give(ReleaseRefused(reservation_id="r-1"))
        d.fire(TimerKind.COMPENSATION_RETRY, "reserve_stock")
    d.fire(TimerKind.COMPENSATION_TIMEOUT, "authorize_payment")  # its retry is armed
    d.give(ReleaseRefused(reservation_id="r-1"))
    assert d.instance.state is SagaState.FAILED
    assert d.status("authorize_payment") is StepStatus.COMPENSATION_RETRYING
    d.fire(TimerKind.COMPENSATION_RETRY, "authorize_payment")  # carries on meanwhile
    assert d.sent(OutgoingKind.COMPENSATION) == ["order:o-1:authorize_payment:compensate:1"]
    d.give(PaymentVoided(authorization_id="a-1"))
    assert d.status("authorize_payment") is StepStatus.COMPENSATED
    d.give(Resume(id="op-2"))
    d.give(StockReleased(reservation_id="r-1"))
    assert d.instance.state is SagaState.COMPENSATED


def aborted_while_the_payment_waits_for_its_retry() -> Driver:
    d = Driver()
    d.give(reserved())
    d.give(GatewayBusy(order_id="o-1"))
    d.give(Abort(id="op-1"))
    d.give(StockReleased(reservation_id="r-1"))
    assert d.instance.state is SagaState.COMPENSATED
    assert d.status("authorize_payment") is StepStatus.CANCELLED
    return d


def test_a_late_success_after_the_end_is_compensated_and_tracked() -> None:
    d = aborted_while_the_payment_waits_for_its_retry()
    late = d.give(PaymentAuthorized(order_id="o-1", authorization_id="a-1"), after=timedelta(1))
    assert late.ignored is None
    assert d.instance.state is SagaState.COMPENSATED
    assert d.status("authorize_payment") is StepStatus.COMPENSATING
    assert d.sent(OutgoingKind.COMPENSATION) == ["order:o-1:authorize_payment:compensate:1"]
    assert [t.kind for t in d.instance.timers] == [TimerKind.COMPENSATION_TIMEOUT]
    d.give(PaymentVoided(authorization_id="a-1"))
    assert d.status("authorize_payment") is StepStatus.COMPENSATED
    assert d.instance.state is SagaState.COMPENSATED
    assert d.last.outgoing == ()  # no second end event
    assert d.instance.timers == ()


def test_a_late_compensation_that_keeps_failing_leaves_the_saga_failed() -> None:
    d = aborted_while_the_payment_waits_for_its_retry()
    d.give(PaymentAuthorized(order_id="o-1", authorization_id="a-1"))
    for _ in range(3):
        d.fire(TimerKind.COMPENSATION_TIMEOUT, "authorize_payment")
        d.fire(TimerKind.COMPENSATION_RETRY, "authorize_payment")
    d.fire(TimerKind.COMPENSATION_TIMEOUT, "authorize_payment")
    assert d.instance.state is SagaState.FAILED  # a person must look: the payment is held
    assert d.instance.failed_in_compensation
    d.give(Resume(id="op-2"))
    d.give(PaymentVoided(authorization_id="a-1"))
    assert d.instance.state is SagaState.COMPENSATED


def test_a_reply_goes_to_the_step_its_in_reply_to_names() -> None:
    d = Driver()

    def answer(record: Record, in_reply_to: str) -> Decision[OrderData]:
        d.n += 1
        item = replace(envelope(record, f"m{d.n}", at=d.now), in_reply_to=in_reply_to)
        return d.give(item)

    ignored = {
        "order:o-1:authorize_payment:1": "is not a reply to",  # another step's command
        "order:o-1:reserve_stock:2": "answers attempt 2",  # not sent yet
        "order:o-1:unknown:1": "unknown command",
        "order:o-1:reserve_stock:compensate:1": "is not a reply to",
    }
    for in_reply_to, why in ignored.items():
        decision = answer(reserved(), in_reply_to)
        assert decision.ignored is not None
        assert why in decision.ignored
    assert d.status("reserve_stock") is StepStatus.RUNNING
    answer(reserved(), "order:o-1:reserve_stock:1")
    assert d.status("reserve_stock") is StepStatus.SUCCEEDED
    # A generic failure names its command in in_reply_to as in command_id.
    failed = CommandFailed(command_id="order:o-1:authorize_payment:1", reason="x", retryable=True)
    answer(failed, "order:o-1:authorize_payment:1")
    assert d.status("authorize_payment") is StepStatus.RETRYING


def test_a_late_failure_reply_to_the_last_command_means_nothing_to_undo() -> None:
    d = Driver(parallel_saga())
    d.fire(TimerKind.TIMEOUT, "authorize_payment")  # waits to resend the same command
    assert d.instance.step("authorize_payment").unanswered
    d.give(Abort(id="op-1"))
    assert d.status("authorize_payment") is StepStatus.CANCELLED  # may have been applied
    answered = d.give(PaymentDeclined(order_id="o-1"))  # the participant's answer, late
    assert answered.ignored is None
    assert not d.instance.step("authorize_payment").unanswered
    d.give(reserved())
    assert d.sent(OutgoingKind.COMPENSATION) == ["order:o-1:reserve_stock:compensate:1"]
    d.give(StockReleased(reservation_id="r-1"))
    assert d.instance.state is SagaState.COMPENSATED
