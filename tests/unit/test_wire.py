"""The core's outgoing messages as Kafka records (`sagas.runtime.wire`, and the
worker's dead letters of dropped early events)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest

from sagas import decide
from sagas.bench import participants
from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from sagas.machine import Outgoing, OutgoingKind
from sagas.runtime import wire
from sagas.runtime.wire import kept_dead_letter
from services.app import app as examples
from services.definitions.onboarding import ONBOARDING
from services.messages.access import GrantCloudAccess, RevokeCloudAccess
from services.messages.assets import LaptopDelivered
from services.messages.directory import AccountRejected
from services.messages.hr import EmployeeHired, Role
from services.messages.inventory import ReserveStock, StockItem

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def codec() -> Iterator[Codec]:
    with examples.codec() as built:
        yield built


def outgoing(
    kind: OutgoingKind, mid: str, payload: Record, compensates: tuple[str, ...] = ()
) -> Outgoing:
    return Outgoing(
        kind=kind,
        topic="access.commands",
        key="employee:e-1",
        id=mid,
        payload=payload,
        saga_id="employee:e-1",
        source="/sagas/onboarding",
        reply_to="sagas.onboarding.inbox",
        step="grant_access",
        attempt=1,
        compensates=compensates,
    )


def test_a_compensation_names_the_commands_it_undoes_in_a_header(codec: Codec) -> None:
    revoke = RevokeCloudAccess(employee_id="e-1", roles=("developer",))
    out = outgoing(
        OutgoingKind.COMPENSATION,
        "employee:e-1:grant_access:compensate:1",
        revoke,
        ("employee:e-1:grant_access:1", "employee:e-1:grant_access:2"),
    )
    record = wire.encode(out, None, NOW, codec, codec.classes, key=b"e-1", physical=str)
    headers = dict(record.headers)
    assert headers["compensates"] == b"employee:e-1:grant_access:1,employee:e-1:grant_access:2"
    assert record.headers[-1][0] == "content-type"  # still last
    decoded = codec.decode(record.headers, record.value)
    assert decoded.payload == revoke


def test_a_command_has_no_compensates_header(codec: Codec) -> None:
    grant = GrantCloudAccess(employee_id="e-1", roles=("developer",))
    out = outgoing(OutgoingKind.COMMAND, "employee:e-1:grant_access:1", grant)
    record = wire.encode(out, None, NOW, codec, codec.classes, key=b"e-1", physical=str)
    assert "compensates" not in dict(record.headers)


def test_an_early_event_dropped_goes_to_the_dead_letters_with_its_reason(codec: Codec) -> None:
    def envelope(payload: Record, mid: str, saga_id: str | None) -> Envelope:
        return Envelope(
            id=mid, type=payload.SCHEMA, source="/t", time=NOW, payload=payload, saga_id=saga_id
        )

    hired = EmployeeHired(
        employee_id="e-1",
        full_name="Ada Lovelace",
        role=Role.ENGINEER,
        start_date=date(2030, 2, 1),
        hired_at=NOW,
    )
    delivered = LaptopDelivered(employee_id="e-1", asset_tag="MBP-16-0001", delivered_at=NOW)
    rejected = AccountRejected(employee_id="e-1", reason="no")
    instance = decide(ONBOARDING, None, envelope(hired, "h-1", None), NOW).instance
    for item in (envelope(delivered, "ev-1", "employee:e-1"), envelope(rejected, "r-1", None)):
        assert instance is not None
        decision = decide(ONBOARDING, instance, item, NOW)
        instance = decision.instance
    [dropped] = [m for m in decision.outgoing if m.kind is OutgoingKind.DEAD_LETTER]
    assert dropped.reason == "step-not-reached"  # the saga ended before laptop_delivered

    record = kept_dead_letter(dropped, codec, str, 3)
    assert record.topic == "sagas.onboarding.dlq"
    assert record.key == b"employee:e-1"
    headers = dict(record.headers)
    assert headers["dlq_reason"] == b"step-not-reached"
    assert headers["dlq_error"] == b"EarlyEventDropped"
    assert (headers["dlq_topic"], headers["dlq_partition"]) == (b"sagas.onboarding.inbox", b"3")
    assert headers["dlq_offset"] == b"-1"  # the instance kept the envelope, not the record
    assert headers["ce_id"] == b"ev-1"
    original = [(k, v) for k, v in record.headers if not k.startswith("dlq_")]
    assert codec.decode(original, record.value).payload == delivered


def test_the_bench_participants_name_the_command_they_answer(codec: Codec) -> None:
    reserve = ReserveStock(order_id="o-1", items=(StockItem(sku="SKU-1", quantity=1),))
    command = Envelope(
        id="order:o-1:reserve_stock:1",
        type=reserve.SCHEMA,
        source="/sagas/order_fulfilment",
        time=NOW,
        payload=reserve,
        saga_id="order:o-1",
        reply_to="sagas.order_fulfilment.inbox",
    )
    topic, _, headers, value = participants.reply(codec, command)
    assert topic == "sagas.order_fulfilment.inbox"
    assert codec.decode(headers, value).in_reply_to == "order:o-1:reserve_stock:1"
