"""The public test kit: whole sagas against simulated participants, without a broker."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sagas import Resume, SagaState
from sagas.machine import OutgoingKind
from sagas.testing import Faults, Handler, Harness, reply, script, silent
from tests.unit.saga_fixtures import (
    AuthorizePayment,
    CustomerNotified,
    NotifyCustomer,
    OrderPlaced,
    ParcelDelivered,
    PaymentAuthorized,
    PaymentDeclined,
    PaymentVoided,
    ReleaseRefused,
    ReleaseStock,
    ReserveStock,
    ScheduleShipment,
    ShipmentScheduled,
    StockReleased,
    StockReserved,
    VoidPayment,
    order_saga,
    parallel_saga,
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
    harness.assert_compensated(saga_id, ["reserve_stock"])
    sends = harness.messages(saga_id, OutgoingKind.COMMAND)
    assert [m.id for m in sends].count("order:o-1:authorize_payment:1") == 3  # timeouts resend


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
