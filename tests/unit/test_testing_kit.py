"""The public test kit: whole sagas against simulated participants, without a broker."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

from sagas import (
    Abort,
    Resume,
    SagaState,
    Step,
    StepStatus,
)
from sagas.contracts.record import Envelope
from sagas.machine import MAX_EARLY, OutgoingKind
from sagas.testing import Delivery, Faults, Handler, Harness, reply, script, silent
from tests.unit.saga_fixtures import (
    AuthorizePayment,
    CustomerNotified,
    GatewayBusy,
    NotifyCustomer,
    NotifyFailed,
    OrderData,
    OrderPlaced,
    ParcelDelivered,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentVoided,
    ReleaseRefused,
    ReleaseStock,
    ReserveStock,
    ScheduleShipment,
    ShipmentRejected,
    ShipmentScheduled,
    StockReleased,
    StockReserved,
    VoidPayment,
    notify_step,
    order_saga,
    parallel_saga,
    payment_step,
    reserve_step,
    shipment_step,
    twin_saga,
)


def happy() -> dict[type, Handler]:
    return {
        ReserveStock: reply(lambda c: StockReserved(order_id=c.order_id, reservation_id="r-1")),
        AuthorizePayment: reply(
            lambda c: PaymentAuthorized(order_id=c.order_id, authorization_id="a-1")
        ),
        ScheduleShipment: reply(lambda c: ShipmentScheduled(order_id=c.order_id)),
        NotifyCustomer: reply(lambda c: CustomerNotified(order_id=c.order_id)),
        ReleaseStock: reply(lambda c: StockReleased(reservation_id=c.reservation_id)),
        VoidPayment: reply(lambda c: PaymentVoided(authorization_id=c.authorization_id)),
    }


def order(order_id: str = "o-1") -> OrderPlaced:
    return OrderPlaced(order_id=order_id, amount=Decimal("12.50"))


def test_happy_path_completes() -> None:
    harness = Harness(order_saga(), happy())
    saga_id = harness.start(order())
    harness.run()
    harness.assert_completed(saga_id)
    events = [m.type for m in harness.messages(saga_id, OutgoingKind.DOMAIN_EVENT)]
    assert events == ["test.OrderFulfilled"]


def test_declined_payment_compensates_the_reservation() -> None:
    participants = {**happy(), AuthorizePayment: script(PaymentDeclined(order_id="o-1"))}
    harness = Harness(order_saga(), participants)
    saga_id = harness.start(order())
    harness.run()
    harness.assert_compensated(saga_id, ["reserve_stock"])


def test_silent_participant_times_out_and_compensates() -> None:
    harness = Harness(order_saga(), {**happy(), AuthorizePayment: silent()})
    saga_id = harness.start(order())
    harness.run()
    # The payment may have been authorized without a word: it is voided too.
    harness.assert_compensated(saga_id, ["authorize_payment", "reserve_stock"])
    sends = harness.messages(saga_id, OutgoingKind.COMMAND)
    assert [m.id for m in sends].count("order:o-1:authorize_payment:1") == 3  # timeouts resend
    void = harness.messages(saga_id, OutgoingKind.COMPENSATION)[0]
    assert void.compensates == ("order:o-1:authorize_payment:1",)


def test_parallel_branch_failure_waits_for_the_sibling_then_undoes_it() -> None:
    slow = Faults(latency=(timedelta(milliseconds=1), timedelta(seconds=5)), seed=3)
    participants = {**happy(), AuthorizePayment: script(PaymentDeclined(order_id="o-1"))}
    harness = Harness(parallel_saga(), participants, faults=slow)
    saga_id = harness.start(order())
    harness.run()
    harness.assert_compensated(saga_id, ["reserve_stock"])


def test_choreography_event_arriving_early_is_kept() -> None:
    harness = Harness(parallel_saga(), happy())
    saga_id = harness.start(order())
    harness.publish(ParcelDelivered(order_id="o-1"))
    harness.run()
    harness.assert_completed(saga_id)


def test_duplicates_and_reordering_do_not_change_the_outcome() -> None:
    faults = Faults(
        latency=(timedelta(milliseconds=1), timedelta(seconds=2)), duplicate=0.5, seed=11
    )
    harness = Harness(order_saga(), happy(), faults=faults)
    ids = [harness.start(order(f"o-{i}")) for i in range(20)]
    harness.run()
    for saga_id in ids:
        harness.assert_completed(saga_id)
    assert any(d.ignored == "duplicate" for _, d in harness.decisions)


def test_failing_compensation_needs_an_operator() -> None:
    participants = {
        **happy(),
        AuthorizePayment: script(PaymentDeclined(order_id="o-1")),
        ReleaseStock: script(
            ReleaseRefused(reservation_id="r-1"),
            ReleaseRefused(reservation_id="r-1"),
            ReleaseRefused(reservation_id="r-1"),
            StockReleased(reservation_id="r-1"),
        ),
    }
    harness = Harness(order_saga(), participants)
    saga_id = harness.start(order())
    harness.run()
    harness.assert_failed(saga_id, "compensation of reserve_stock failed")
    harness.operate(saga_id, Resume(id="op-1", actor="alice"), after=timedelta(minutes=1))
    harness.run()
    harness.assert_compensated(saga_id, ["reserve_stock"])


def test_run_until_stops_the_clock() -> None:
    harness = Harness(order_saga(), {**happy(), AuthorizePayment: silent()})
    saga_id = harness.start(order())
    harness.run(until=timedelta(seconds=1))
    assert harness.state(saga_id) is SagaState.RUNNING


def notify_without_policy() -> Step[OrderData]:
    """`notify_step` without its explicit policy: the retriable kind's default applies."""
    step = notify_step()
    return Step(
        name=step.name,
        kind=step.kind,
        command=step.command,
        success=step.success,
        failure=step.failure,
    )


def test_a_retriable_step_without_a_policy_is_retried_until_it_succeeds() -> None:
    saga = order_saga(
        steps=(reserve_step(), payment_step(), shipment_step(), notify_without_policy())
    )
    failures = [NotifyFailed(order_id="o-1")] * 6
    participants = {**happy(), NotifyCustomer: script(*failures, CustomerNotified(order_id="o-1"))}
    harness = Harness(saga, participants)
    saga_id = harness.start(order())
    harness.run()
    harness.assert_completed(saga_id)
    sends = [m.id for m in harness.messages(saga_id, OutgoingKind.COMMAND)]
    assert sends[-7:] == [f"order:o-1:notify_customer:{n}" for n in range(1, 8)]


def test_a_retriable_step_that_times_out_keeps_resending_with_backoff() -> None:
    saga = order_saga(
        steps=(reserve_step(), payment_step(), shipment_step(), notify_without_policy()),
        deadline=None,
    )
    harness = Harness(saga, {**happy(), NotifyCustomer: silent()})
    saga_id = harness.start(order())
    harness.run(until=timedelta(hours=2))
    instance = harness.instance(saga_id)
    assert instance.state is SagaState.RUNNING
    assert instance.step("notify_customer").status in (StepStatus.RUNNING, StepStatus.RETRYING)
    sent = [h for h in instance.history if "order:o-1:notify_customer:1" in h.sent]
    assert len(sent) > 10  # a timeout resends the same command id, again and again
    gaps = [b.at - a.at for a, b in itertools.pairwise(sent)]
    timeout = timedelta(seconds=30)
    assert gaps[0] < gaps[4]  # exponential backoff...
    assert max(gaps) <= timeout + timedelta(minutes=5)  # ...capped at max_backoff


def test_a_late_success_after_the_saga_ended_is_compensated_then() -> None:
    # The gateway was busy and the saga was aborted before the retry; the participant
    # then authorized the payment after all (a redelivery of the first command).
    participants = {**happy(), AuthorizePayment: script(GatewayBusy(order_id="o-1"))}
    harness = Harness(order_saga(), participants)
    saga_id = harness.start(order())
    harness.operate(saga_id, Abort(id="op-1"), after=timedelta(milliseconds=500))
    harness.run()
    harness.assert_compensated(saga_id, ["reserve_stock"])
    ended = harness.instance(saga_id).ended
    authorized = PaymentAuthorized(order_id="o-1", authorization_id="a-late")
    late = Envelope(
        id="order:o-1:authorize_payment:1:reply:again",
        type=authorized.SCHEMA,
        source="/services/payments",
        time=harness.now,
        payload=authorized,
        saga_id=saga_id,
    )
    harness.send(saga_id, late, after=timedelta(minutes=1))
    harness.run()

    harness.assert_compensated(saga_id, ["reserve_stock", "authorize_payment"])
    instance = harness.instance(saga_id)
    assert instance.ended == ended  # the saga stays ended; only the step moved on
    assert instance.step("authorize_payment").status is StepStatus.COMPENSATED
    void = harness.messages(saga_id, OutgoingKind.COMPENSATION)[-1]
    assert void.payload == VoidPayment(authorization_id="a-late")  # built from the late reply
    assert void.compensates == ("order:o-1:authorize_payment:1",)
    events = [m.type for m in harness.messages(saga_id, OutgoingKind.DOMAIN_EVENT)]
    assert events == ["test.OrderCancelled"]  # published once
    assert any("succeeded late" in h.note for h in instance.history)


def test_early_events_are_bounded_and_dead_lettered_oldest_first() -> None:
    # The stock service is silent, so the saga never reaches `delivered` while a noisy
    # shipping service publishes the delivery 40 times.
    harness = Harness(parallel_saga(), {**happy(), ReserveStock: silent()})
    saga_id = harness.start(order())
    for _ in range(40):
        harness.publish(ParcelDelivered(order_id="o-1"), after=timedelta(milliseconds=1))
    harness.run(until=timedelta(seconds=1))
    instance = harness.instance(saga_id)
    assert len(instance.early) == MAX_EARLY
    overflow = harness.dead_letters(saga_id)
    assert [m.reason for m in overflow] == ["early-overflow"] * (40 - MAX_EARLY)
    arrived = [
        i.id
        for i, _ in harness.decisions
        if isinstance(i, Envelope) and i.type == "test.ParcelDelivered"
    ]
    dropped = [m.envelope.id for m in overflow if m.envelope is not None]
    assert dropped == arrived[: 40 - MAX_EARLY]  # the oldest go out
    assert [e.id for e in instance.early] == arrived[40 - MAX_EARLY :]
    assert all(m.topic == "sagas.parallel_order.dlq" for m in overflow)

    harness.run()  # the reservation times out for good: the saga ends compensated
    harness.assert_compensated(saga_id)
    assert harness.instance(saga_id).early == ()
    ended = harness.dead_letters(saga_id)[40 - MAX_EARLY :]
    assert [m.reason for m in ended] == ["step-not-reached"] * MAX_EARLY
    assert all(isinstance(m.envelope, Envelope) for m in ended)


def test_early_events_left_when_the_saga_ends_are_dead_lettered() -> None:
    harness = Harness(parallel_saga(), happy())
    saga_id = harness.start(order())
    for _ in range(3):  # one is used when the step is reached, two are extra
        harness.publish(ParcelDelivered(order_id="o-1"))
    harness.run()
    harness.assert_completed(saga_id)
    assert harness.instance(saga_id).early == ()
    assert [m.reason for m in harness.dead_letters(saga_id)] == ["step-already-decided"] * 2


def reserve_by_command(command: ReserveStock, delivery: Delivery) -> StockReserved:
    return StockReserved(order_id=command.order_id, reservation_id=f"res:{delivery.id}")


def test_two_steps_may_send_the_same_command_and_each_gets_its_reply() -> None:
    faults = Faults(latency=(timedelta(milliseconds=1), timedelta(seconds=2)), seed=5)
    participants = {
        **happy(),
        ReserveStock: reserve_by_command,
        ScheduleShipment: script(ShipmentRejected(order_id="o-1")),
    }
    harness = Harness(twin_saga(), participants, faults=faults)
    saga_id = harness.start(order())
    harness.run()

    data = harness.instance(saga_id).data
    assert data.reservation_id == "res:order:o-1:reserve_stock:1"
    assert data.tags == ("res:order:o-1:reserve_gift:1",)
    # Undone by the same compensation type, each release answered to its own step.
    harness.assert_compensated(saga_id)
    assert set(harness.compensated_steps(saga_id)[1:]) == {"reserve_stock", "reserve_gift"}
    releases = {m.step: m.payload for m in harness.messages(saga_id, OutgoingKind.COMPENSATION)}
    assert releases["reserve_gift"] == ReleaseStock(reservation_id=data.tags[0])
    assert releases["reserve_stock"] == ReleaseStock(reservation_id=data.reservation_id)


def test_an_ambiguous_reply_without_in_reply_to_is_ignored() -> None:
    harness = Harness(twin_saga(), {**happy(), ReserveStock: silent()})
    saga_id = harness.start(order())
    harness.run(until=timedelta(seconds=1))
    stray = StockReserved(order_id="o-1", reservation_id="r-?")
    harness.send(
        saga_id,
        Envelope(
            id="stray",
            type=stray.SCHEMA,
            source="/x",
            time=harness.now,
            payload=stray,
            saga_id=saga_id,
        ),
    )
    harness.run(until=timedelta(seconds=1))
    _, decision = harness.decisions[-1]
    assert decision.ignored is not None
    assert "reserve_stock, reserve_gift" in decision.ignored
    assert "no in_reply_to" in decision.ignored
    instance = harness.instance(saga_id)
    assert instance.step("reserve_stock").status is StepStatus.RUNNING
    assert instance.step("reserve_gift").status is StepStatus.RUNNING
