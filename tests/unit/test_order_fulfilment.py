"""The order fulfilment saga against simulated participants (sagas.testing, no broker)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sagas.contracts.record import Envelope, Record
from sagas.machine import OutgoingKind
from sagas.testing import Faults, Handler, Harness, reply, script, silent
from services.definitions import all_definitions
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReserved,
    StockUnavailable,
)
from services.messages.orders import (
    Address,
    OrderCancelled,
    OrderFulfilled,
    OrderLine,
    OrderPlaced,
)
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
    DeclineReason,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentCaptureFailed,
    PaymentDeclined,
    PaymentVoided,
    VoidPayment,
)
from services.messages.shipping import (
    CancelShipment,
    ScheduleShipment,
    ShipmentCancelled,
    ShipmentFailed,
    ShipmentScheduled,
)

PLACED_AT = datetime(2030, 1, 1, 12, tzinfo=UTC)


def order(order_id: str = "o-1") -> OrderPlaced:
    return OrderPlaced(
        order_id=order_id,
        customer_id="c-1",
        items=(
            OrderLine(sku="SKU-1", quantity=2, unit_price=Decimal("5.00")),
            OrderLine(sku="SKU-2", quantity=1, unit_price=Decimal("2.50")),
        ),
        total=Decimal("12.50"),
        currency="EUR",
        shipping_address=Address(
            recipient="Ada", line1="Main St 1", city="Berlin", postal_code="10115", country="DE"
        ),
        placed_at=PLACED_AT,
    )


def participants(**overrides: Handler) -> dict[type[Record], Handler]:
    """Every command answered with success; ``overrides`` by command class name."""
    handlers: dict[type[Record], Handler] = {
        ReserveStock: reply(lambda c: StockReserved(order_id=c.order_id, reservation_id="r-1")),
        ReleaseStock: reply(
            lambda c: StockReleased(order_id=c.order_id, reservation_id=c.reservation_id)
        ),
        AuthorizePayment: reply(
            lambda c: PaymentAuthorized(
                order_id=c.order_id, authorization_id="a-1", amount=c.amount, currency=c.currency
            )
        ),
        VoidPayment: reply(
            lambda c: PaymentVoided(order_id=c.order_id, authorization_id=c.authorization_id)
        ),
        ScheduleShipment: reply(
            lambda c: ShipmentScheduled(order_id=c.order_id, shipment_id="s-1", carrier="DHL")
        ),
        CancelShipment: reply(
            lambda c: ShipmentCancelled(order_id=c.order_id, shipment_id=c.shipment_id)
        ),
        CapturePayment: reply(
            lambda c: PaymentCaptured(
                order_id=c.order_id, authorization_id=c.authorization_id, capture_id="cap-1"
            )
        ),
    }
    by_name = {cls.__name__: cls for cls in handlers}
    for name, handler in overrides.items():
        handlers[by_name[name]] = handler
    return handlers


def end_events(harness: Harness[Any], saga_id: str) -> list[object]:
    return [m.payload for m in harness.messages(saga_id, OutgoingKind.DOMAIN_EVENT)]


def commands_sent(harness: Harness[Any], saga_id: str) -> list[str]:
    kinds = (OutgoingKind.COMMAND, OutgoingKind.COMPENSATION)
    return [m.type for m in harness.sent if m.saga_id == saga_id and m.kind in kinds]


def test_it_is_shipped() -> None:
    assert ORDER_FULFILMENT in all_definitions()
    assert ORDER_FULFILMENT.route(order("o-9")) == "order:o-9"


def test_happy_path_fulfils_the_order() -> None:
    harness = Harness(ORDER_FULFILMENT, participants())
    saga_id = harness.start(order())
    harness.run()

    harness.assert_completed(saga_id)
    assert commands_sent(harness, saga_id) == [
        "inventory.ReserveStock",
        "payments.AuthorizePayment",
        "shipping.ScheduleShipment",
        "payments.CapturePayment",
    ]
    [event] = end_events(harness, saga_id)
    ended = harness.instance(saga_id).ended
    assert ended is not None
    assert event == OrderFulfilled(order_id="o-1", shipment_id="s-1", fulfilled_at=ended)
    data = harness.instance(saga_id).data
    assert (data.reservation_id, data.authorization_id, data.capture_id) == ("r-1", "a-1", "cap-1")


def test_commands_carry_the_order() -> None:
    harness = Harness(ORDER_FULFILMENT, participants())
    saga_id = harness.start(order())
    harness.run()
    sent = {m.type: m.payload for m in harness.messages(saga_id, OutgoingKind.COMMAND)}
    reserve = sent["inventory.ReserveStock"]
    assert isinstance(reserve, ReserveStock)
    assert [(i.sku, i.quantity) for i in reserve.items] == [("SKU-1", 2), ("SKU-2", 1)]
    capture = sent["payments.CapturePayment"]
    assert capture == CapturePayment(
        order_id="o-1", authorization_id="a-1", amount=Decimal("12.50")
    )
    assert all(m.key == saga_id for m in harness.messages(saga_id, OutgoingKind.COMMAND))


def test_out_of_stock_cancels_without_undoing_anything() -> None:
    short = StockUnavailable(order_id="o-1", sku="SKU-2", requested=1, available=0)
    harness = Harness(ORDER_FULFILMENT, participants(ReserveStock=script(short)))
    saga_id = harness.start(order())
    harness.run()

    harness.assert_compensated(saga_id, [])
    [event] = end_events(harness, saga_id)
    assert isinstance(event, OrderCancelled)
    assert event.reason == "out of stock: SKU-2 (0 of 1)"


def test_payment_declined_releases_the_stock() -> None:
    declined = PaymentDeclined(order_id="o-1", reason=DeclineReason.INSUFFICIENT_FUNDS)
    harness = Harness(ORDER_FULFILMENT, participants(AuthorizePayment=script(declined)))
    saga_id = harness.start(order())
    harness.run()

    harness.assert_compensated(saga_id, ["reserve_stock"])
    release = harness.messages(saga_id, OutgoingKind.COMPENSATION)[0].payload
    assert release == ReleaseStock(order_id="o-1", reservation_id="r-1")
    [event] = end_events(harness, saga_id)
    assert isinstance(event, OrderCancelled)
    assert event.reason == "payment declined: INSUFFICIENT_FUNDS"


def test_shipment_failing_voids_the_payment_and_releases_the_stock() -> None:
    failed = ShipmentFailed(order_id="o-1", reason="no carrier serves XX")
    harness = Harness(ORDER_FULFILMENT, participants(ScheduleShipment=script(failed)))
    saga_id = harness.start(order())
    harness.run()

    harness.assert_compensated(saga_id, ["authorize_payment", "reserve_stock"])
    assert "payments.CapturePayment" not in commands_sent(harness, saga_id)
    [event] = end_events(harness, saga_id)
    assert isinstance(event, OrderCancelled)
    assert event.reason == "shipment failed: no carrier serves XX"


def test_capture_failing_undoes_everything_in_reverse_order() -> None:
    failed = PaymentCaptureFailed(order_id="o-1", reason="authorization expired")
    harness = Harness(ORDER_FULFILMENT, participants(CapturePayment=script(failed)))
    saga_id = harness.start(order())
    harness.run()

    harness.assert_compensated(saga_id, ["schedule_shipment", "authorize_payment", "reserve_stock"])
    undo = [m.payload for m in harness.messages(saga_id, OutgoingKind.COMPENSATION)]
    assert undo == [
        CancelShipment(order_id="o-1", shipment_id="s-1"),
        VoidPayment(order_id="o-1", authorization_id="a-1"),
        ReleaseStock(order_id="o-1", reservation_id="r-1"),
    ]
    [event] = end_events(harness, saga_id)
    assert isinstance(event, OrderCancelled)
    assert event.reason == "payment capture failed: authorization expired"


def test_duplicated_replies_change_nothing() -> None:
    failed = PaymentCaptureFailed(order_id="o-2", reason="authorization expired")
    harness = Harness(
        ORDER_FULFILMENT,
        participants(CapturePayment=script(failed)),
        faults=Faults(duplicate=1.0, seed=3),
    )
    saga_id = harness.start(order("o-2"))
    harness.run()

    harness.assert_compensated(saga_id, ["schedule_shipment", "authorize_payment", "reserve_stock"])
    # every reply was delivered twice, yet every command and compensation went out once
    assert all(n == 1 for n in Counter(commands_sent(harness, saga_id)).values())
    assert len(end_events(harness, saga_id)) == 1
    duplicates = [d for _, d in harness.decisions if d.ignored == "duplicate"]
    assert len(duplicates) == 7


def test_duplicates_and_reordering_on_many_orders() -> None:
    harness = Harness(
        ORDER_FULFILMENT,
        participants(),
        faults=Faults(
            latency=(timedelta(milliseconds=1), timedelta(seconds=2)), duplicate=0.5, seed=11
        ),
    )
    ids = [harness.start(order(f"o-{i}")) for i in range(20)]
    harness.run()
    for saga_id in ids:
        harness.assert_completed(saga_id)
        assert len(end_events(harness, saga_id)) == 1


def test_a_slow_reply_is_accepted_when_the_resend_is_answered() -> None:
    # Replies take 31 s, past the 30 s timeout: the step resends the same command id,
    # the first reply still arrives and counts.
    harness = Harness(
        ORDER_FULFILMENT,
        participants(),
        faults=Faults(latency=(timedelta(seconds=31), timedelta(seconds=31))),
    )
    saga_id = harness.start(order())
    harness.run()

    harness.assert_completed(saga_id)
    reserves = harness.messages(saga_id, OutgoingKind.COMMAND)
    assert len({m.id for m in reserves if m.type == "inventory.ReserveStock"}) == 1


def test_a_step_that_gave_up_is_undone_and_its_late_reply_recorded() -> None:
    # The stock service is paused: reserve_stock times out three times and fails. It may
    # have reserved (it just did not say), so the saga releases it, naming the command.
    # The reservation made meanwhile arrives ten minutes later and is only recorded.
    harness = Harness(ORDER_FULFILMENT, participants(ReserveStock=silent()))
    saga_id = harness.start(order())
    reserved = StockReserved(order_id="o-1", reservation_id="r-1")
    late = Envelope(
        id="order:o-1:reserve_stock:1:reply",
        type=reserved.SCHEMA,
        source="/services/inventory",
        time=harness.now,
        payload=reserved,
        saga_id=saga_id,
    )
    harness.send(saga_id, late, after=timedelta(minutes=10))
    harness.run()

    harness.assert_compensated(saga_id, ["reserve_stock"])
    [release] = harness.messages(saga_id, OutgoingKind.COMPENSATION)
    assert release.compensates == ("order:o-1:reserve_stock:1",)
    late_decisions = [d for _, d in harness.decisions if d.ignored and "StockReserved" in d.note]
    assert late_decisions, [d.note for _, d in harness.decisions]
    assert [type(e) for e in end_events(harness, saga_id)] == [OrderCancelled]


def test_the_end_events_carry_the_time_the_saga_ended() -> None:
    later = PLACED_AT + timedelta(hours=3)  # the engine runs the saga hours after the order
    happy = Harness(ORDER_FULFILMENT, participants(), start=later)
    fulfilled = happy.start(order())
    happy.run()
    [done] = end_events(happy, fulfilled)
    assert isinstance(done, OrderFulfilled)
    assert done.fulfilled_at == happy.instance(fulfilled).ended
    assert done.fulfilled_at is not None
    assert done.fulfilled_at > later

    declined = PaymentDeclined(order_id="o-1", reason=DeclineReason.INSUFFICIENT_FUNDS)
    sad = Harness(ORDER_FULFILMENT, participants(AuthorizePayment=script(declined)), start=later)
    cancelled = sad.start(order())
    sad.run()
    [undone] = end_events(sad, cancelled)
    assert isinstance(undone, OrderCancelled)
    assert undone.cancelled_at == sad.instance(cancelled).ended
