"""Every message class encodes and decodes unchanged; old writers are read by new readers."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagas.contracts.avro_types import normalize
from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.errors import EncodeError, HeaderError
from sagas.contracts.headers import to_headers
from sagas.contracts.record import Envelope, Record
from sagas.contracts.registry import EmbeddedRegistry
from sagas.contracts.schemas import SchemaFile, SchemaTree
from services.app import app as _examples_app
from services.messages.orders import OrderCancelled
from services.messages.shipping import ShipmentScheduled
from tests.unit.contracts.strategies import instances, sample

ALL_MESSAGES = tuple(cls for _, cls in _examples_app.classes.items())

NOW = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)


def envelope(payload: Record, **extra: Any) -> Envelope:
    return Envelope(
        id="m-1", type=payload.SCHEMA, source="/tests", time=NOW, payload=payload, **extra
    )


@pytest.mark.parametrize("cls", ALL_MESSAGES, ids=lambda cls: cls.SCHEMA)
def test_every_message_round_trips(cls: type[Record], codec: Codec, tree: SchemaTree) -> None:
    @settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(instances(cls, normalize(tree.current[cls.SCHEMA].raw)))
    def round_trip(payload: Record) -> None:
        sent = envelope(payload, saga_id="s-1", reply_to="sagas.x.inbox", in_reply_to="s-1:a:1")
        headers, value = codec.encode(sent)
        assert codec.decode(headers, value) == sent

    round_trip()


def test_wire_format_prefix(codec: Codec) -> None:
    payload = sample(OrderCancelled)
    _, value = codec.encode(envelope(payload))
    assert value[0] == 0
    assert int.from_bytes(value[1:5], "big") == codec.writer_id("orders.OrderCancelled")


def test_headers_follow_the_cloudevents_kafka_binding(codec: Codec) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    sent = envelope(sample(OrderCancelled), saga_id="s", traceparent=trace, tracestate="k=v")
    headers, _ = codec.encode(sent)
    values = dict(headers)
    assert values["ce_specversion"] == b"1.0"
    assert values["ce_type"] == b"orders.OrderCancelled"
    assert values["ce_time"] == b"2024-05-01T12:00:00.123456Z"
    assert values["content-type"] == b"application/avro"
    assert values["traceparent"] == trace.encode()
    assert "reply_to" not in values
    assert "in_reply_to" not in values
    assert codec.decode(headers, codec.encode(sent)[1]) == sent


def test_a_reply_names_the_command_it_answers(codec: Codec) -> None:
    sent = envelope(sample(OrderCancelled), saga_id="s", in_reply_to="s:reserve_stock:2")
    headers, value = codec.encode(sent)
    assert dict(headers)["in_reply_to"] == b"s:reserve_stock:2"
    assert codec.decode(headers, value).in_reply_to == "s:reserve_stock:2"
    empty = [(k, b" " if k == "in_reply_to" else v) for k, v in headers]
    with pytest.raises(HeaderError, match="in_reply_to is empty"):
        codec.decode(empty, value)
    twice = [*headers, ("in_reply_to", b"s:x:1")]
    with pytest.raises(HeaderError, match="more than once"):
        codec.decode(twice, value)


def test_ids_are_stable_and_independent_of_file_order(tree: SchemaTree) -> None:
    forward = EmbeddedRegistry.from_tree(tree).ids()
    shuffled = SchemaTree(root=tree.root, current=dict(reversed(list(tree.current.items()))))
    assert {v: k for k, v in EmbeddedRegistry.from_tree(shuffled).ids().items()} == {
        v: k for k, v in forward.items()
    }
    # Pinned: an id written to Kafka must mean the same schema forever, on every machine.
    # (Changing this schema's text gives it a new id; update the number with the schema.)
    assert forward_id(forward, "orders.OrderCancelled") == 853244264


def forward_id(ids: dict[int, str], name: str) -> int:
    return next(key for key, value in ids.items() if value == name)


def test_older_writer_is_read_by_the_newer_reader(codec: Codec, tree: SchemaTree) -> None:
    current = tree.current["shipping.ShipmentScheduled"].raw
    older = json.loads(json.dumps(current))
    older["fields"] = [f for f in older["fields"] if f["name"] != "estimated_delivery"]
    older["fields"][0]["type"] = "string"
    writer_id = codec.registry.register("shipping.ShipmentScheduled", older)
    body = io.BytesIO()
    datum = {"order_id": "o-1", "shipment_id": "sh-1", "carrier": "DHL"}
    fastavro.schemaless_writer(body, SchemaFile.from_json(older, "v0").parsed, datum)
    value = b"\x00" + writer_id.to_bytes(4, "big") + body.getvalue()
    old = Envelope(
        id="m",
        type="shipping.ShipmentScheduled",
        source="/old",
        time=NOW,
        payload=ShipmentScheduled(order_id="x", shipment_id="x", carrier="x"),
    )
    decoded = codec.decode(to_headers(old), value)
    assert decoded.payload == ShipmentScheduled(
        order_id="o-1", shipment_id="sh-1", carrier="DHL", estimated_delivery=None
    )


def test_int_written_is_promoted_for_a_long_reader(tree: SchemaTree) -> None:
    # A reader schema that widened StockUnavailable.requested from int to long.
    from services.messages.inventory import StockUnavailable

    reader = json.loads(json.dumps(tree.current["inventory.StockUnavailable"].raw))
    writer = tree.current["inventory.StockUnavailable"]
    reader["fields"][2]["type"] = "long"
    registry = EmbeddedRegistry({"inventory.StockUnavailable": [writer]})
    codec = Codec(
        registry,
        {"inventory.StockUnavailable": SchemaFile.from_json(reader, "new")},
        ClassMap([StockUnavailable]),
    )
    old_codec = Codec(registry, {writer.name: writer}, ClassMap([StockUnavailable]))
    sent = envelope(StockUnavailable(order_id="o", sku="s", requested=7, available=2))
    assert codec.decode(*old_codec.encode(sent)) == sent


@given(st.integers(min_value=2**31, max_value=2**40))
def test_out_of_range_int_is_an_encode_error(codec: Codec, requested: int) -> None:
    from services.messages.inventory import StockUnavailable

    payload = StockUnavailable(order_id="o", sku="s", requested=requested, available=0)
    with pytest.raises(EncodeError):
        codec.encode(envelope(payload))
