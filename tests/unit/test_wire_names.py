"""The names on the wire, pinned: topic names and the prefix, dead-letter headers, action
ids. Other systems, old records and running engines depend on these bytes."""

from __future__ import annotations

from datetime import UTC, datetime

from sagas.contracts import actions, deadletters, topics
from sagas.contracts.errors import MessageError
from sagas.contracts.messages.sagas import OperatorAction, OperatorActionKind
from sagas.ops.actions import ActionRequest
from sagas.ops.dlq import DeadLetter
from sagas.runtime import topics as runtime_topics
from sagas.runtime.deadletter import dead_letter
from sagas.runtime.transport.kafka import KafkaTransport
from sagas.runtime.transport.records import Consumed
from sagas.runtime.wire import operator_action
from tests.unit.saga_fixtures import order_saga, reserve_step

PREFIX = "run-7."
AT = datetime(2025, 3, 4, 5, 6, 7, 890000, tzinfo=UTC)


def test_the_physical_topic_names_of_a_saga_and_a_service() -> None:
    def on_broker(name: str) -> str:
        return topics.physical(PREFIX, name)

    assert on_broker(topics.inbox("order_fulfilment")) == "run-7.sagas.order_fulfilment.inbox"
    assert on_broker(topics.changelog("order_fulfilment")) == (
        "run-7.sagas.order_fulfilment.changelog"
    )
    assert on_broker(topics.history("order_fulfilment")) == "run-7.sagas.order_fulfilment.history"
    assert on_broker(topics.dead_letters("order_fulfilment")) == "run-7.sagas.order_fulfilment.dlq"
    assert on_broker(topics.OUTCOMES) == "run-7.sagas.events"
    assert on_broker(topics.ROUTER_DEAD_LETTERS) == "run-7.sagas.router.dlq"
    assert on_broker(topics.READ_MODEL_DEAD_LETTERS) == "run-7.sagas.readmodel.dlq"
    assert on_broker(topics.commands("inventory")) == "run-7.inventory.commands"
    assert on_broker(topics.events("orders")) == "run-7.orders.events"
    assert on_broker(topics.service_dead_letters("inventory")) == "run-7.inventory.dlq"


def test_the_definitions_and_the_engine_use_the_same_names() -> None:
    saga = order_saga()
    assert saga.inbox == topics.inbox("order_fulfilment")
    assert saga.dead_letters == topics.dead_letters("order_fulfilment")
    assert reserve_step().command.topic == topics.commands("inventory")
    created = [s.name for s in runtime_topics.saga_topics("order_fulfilment", 3)]
    assert created == [
        "sagas.order_fulfilment.inbox",
        "sagas.order_fulfilment.changelog",
        "sagas.order_fulfilment.history",
        "sagas.order_fulfilment.dlq",
    ]


def test_the_prefix_comes_off_only_names_of_that_prefix() -> None:
    assert topics.logical(PREFIX, "run-7.sagas.events") == "sagas.events"
    assert topics.logical(PREFIX, "run-8.sagas.events") is None
    transport = KafkaTransport("localhost:9092", PREFIX)
    assert transport.physical("sagas.events") == "run-7.sagas.events"
    assert transport.logical("run-7.sagas.events") == "sagas.events"
    assert transport.logical("other.events") == "other.events"


def test_a_saga_topic_names_its_saga() -> None:
    assert topics.saga_of("sagas.a.b.changelog", topics.changelog) == "a.b"
    assert topics.saga_of("sagas.s.history", topics.history) == "s"
    assert topics.saga_of("sagas.s.history", topics.changelog) is None
    assert topics.saga_of("sagas..changelog", topics.changelog) is None
    assert topics.saga_of("orders.events", topics.inbox) is None
    assert topics.is_dead_letters("run-7.inventory.dlq")
    assert topics.is_changelog("sagas.s.changelog")
    assert topics.is_commands("run-7.inventory.commands")
    assert topics.is_commands(topics.commands("inventory"))
    assert not topics.is_commands("sagas.s.inbox")


def test_a_dead_letter_as_the_engine_writes_it_and_ops_reads_it() -> None:
    original = (("ce_type", b"orders.OrderPlaced"), ("saga_id", b"order:o-1"))
    record = Consumed("orders.events", 2, 41, b"o-1", b"\x00value", original)
    out = dead_letter(
        record, "run-7.orders.events", topics.ROUTER_DEAD_LETTERS, "no-route", "why", "Rejected"
    )
    assert [k for k, _ in out.headers] == [
        "ce_type",
        "saga_id",
        "dlq_reason",
        "dlq_error",
        "dlq_message",
        "dlq_topic",
        "dlq_partition",
        "dlq_offset",
    ]
    letter = DeadLetter(out.topic, 0, 9, AT, out.key, out.value, out.headers)
    summary = letter.summary()
    assert (summary["reason"], summary["error"], summary["message"]) == (
        "no-route",
        "Rejected",
        "why",
    )
    assert summary["original_topic"] == "run-7.orders.events"
    assert (summary["original_partition"], summary["original_offset"]) == ("2", "41")
    assert letter.original_headers == list(original)


def test_a_contract_error_writes_the_same_headers() -> None:
    error = MessageError("bad", reason="payload-corrupt").located("run-7.sagas.events", 1, 5)
    assert error.dlq_headers() == [
        ("dlq_reason", b"payload-corrupt"),
        ("dlq_error", b"MessageError"),
        ("dlq_message", b"bad"),
        ("dlq_topic", b"run-7.sagas.events"),
        ("dlq_partition", b"1"),
        ("dlq_offset", b"5"),
    ]
    assert deadletters.TRUNCATED == "dlq_truncated"
    assert deadletters.HEADERS_DROPPED == "dlq_headers_dropped"
    assert all(
        name.startswith(deadletters.PREFIX)
        for name in (deadletters.TRUNCATED, deadletters.HEADERS_DROPPED, deadletters.REASON)
    )


def test_the_action_id_ops_sends_is_the_one_the_engine_records() -> None:
    expected = "order:o-1:RETRY_NOW:2025-03-04T05:06:07.890000+00:00"
    assert actions.action_id("order:o-1", OperatorActionKind.RETRY_NOW, AT) == expected
    request = ActionRequest(
        saga="order_fulfilment",
        saga_id="order:o-1",
        kind=OperatorActionKind.RETRY_NOW,
        actor="ann",
        reason="stuck",
        requested_at=AT,
        step="reserve_stock",
    )
    assert request.id == expected
    assert request.envelope().id == expected
    payload = request.envelope().payload
    assert isinstance(payload, OperatorAction)
    assert operator_action(payload, order_saga()).id == expected
