"""The operations views without a broker: timeline, diagram, charts, stats, parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from sagas.contracts.messages.sagas import OperatorActionKind
from sagas.machine.serialize import instance_to_dict
from sagas.ops.actions import ActionRequest, check_result, requested_now, result_in
from sagas.ops.commands.act import parse_where
from sagas.ops.commands.context import parse_duration
from sagas.ops.errors import OpsError
from sagas.ops.readmodel.describe import search_text, trace_id, waiting_for
from sagas.ops.readmodel.stats import percentile
from sagas.ops.views.diagram import diagram, mermaid
from sagas.ops.views.svg import diagram_svg, gantt_svg, line_chart
from sagas.ops.views.timeline import instance_view
from sagas.testing import Harness, reply
from services.app import app as examples
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from services.messages.inventory import ReleaseStock, ReserveStock
from services.messages.payments import AuthorizePayment, VoidPayment
from tests.integration.engine_support import order_placed, reply_for, two_step_saga


def compensated_body() -> dict[str, Any]:
    saga = two_step_saga("views")
    handlers = {t: reply(reply_for) for t in (ReserveStock, AuthorizePayment, ReleaseStock)}
    harness = Harness(saga, {**handlers, VoidPayment: reply(reply_for)})
    saga_id = harness.start(order_placed("o-declined"))
    harness.run()
    return instance_to_dict(harness.instance(saga_id))


def test_the_timeline_shows_steps_and_their_compensation() -> None:
    view = instance_view(compensated_body())
    steps = {s["name"]: s for s in view["steps"]}
    assert view["state"] == "COMPENSATED"
    assert steps["reserve_stock"]["status"] == "COMPENSATED"
    assert steps["reserve_stock"]["compensation_started"] is not None
    assert steps["reserve_stock"]["compensation_ended"] is not None
    assert steps["authorize_payment"]["error"] == "payments.PaymentDeclined received"
    assert steps["reserve_stock"]["duration"] == pytest.approx(0.005)
    assert [e["seq"] for e in view["history"]] == [0, 1, 2, 3]
    assert "<svg" in gantt_svg(view)


def test_trace_id_comes_from_the_traceparent() -> None:
    assert trace_id("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01") == (
        "4bf92f3577b34da6a3ce929d0e0e4736"
    )
    assert trace_id(None) is None
    assert trace_id("garbage") is None


def test_waiting_for_and_search_text() -> None:
    body = {"state": "RUNNING", "saga_id": "order:X", "data": {"customer": "ACME"}, "steps": []}
    body["steps"] = [{"name": "pay", "status": "RETRYING", "attempt": 2}]
    assert waiting_for(body) == "backoff before retrying pay (after attempt 2)"
    assert waiting_for({"state": "FAILED", "reason": "boom"}) == "an operator: boom"
    assert "acme" in search_text(body)
    assert "order:x" in search_text(body)


def test_the_diagram_marks_an_instance_and_escapes_text() -> None:
    body = compensated_body()
    body["steps"][0]["status"] = "SUCCEEDED"
    body["steps"][1]["status"] = "RUNNING"
    body["state"] = "RUNNING"
    saga = two_step_saga("views")
    model = diagram(saga, body)
    first, second = (stage.boxes[0] for stage in model.stages)
    assert (first.mark, first.comp_mark) == ("done", "would")
    assert second.mark == "current"
    text = mermaid(model)
    assert text.startswith("flowchart TD")
    assert "s_reserve_stock -. compensate .-> s_reserve_stock_undo" in text
    svg = diagram_svg(model)
    assert 'class="mark-current"' in svg
    assert "undo: inventory.ReleaseStock" in svg


def test_the_shipped_saga_draws_with_its_pivot() -> None:
    text = mermaid(diagram(ORDER_FULFILMENT))
    assert "pivot" in text
    assert "<svg" in diagram_svg(diagram(ORDER_FULFILMENT))


def test_chart_text_is_escaped() -> None:
    svg = line_chart("<b>rate</b>", {"<i>": [1.0, None, 2.0]})
    assert "<b>" not in svg
    assert "&lt;b&gt;rate&lt;/b&gt;" in svg
    assert "&lt;i&gt;" in svg


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 50), percentile(values, 95), percentile(values, 99)) == (
        50.0,
        95.0,
        99.0,
    )
    assert percentile([], 50) is None


def test_where_and_durations() -> None:
    query = parse_where("saga=order_fulfilment,state=failed,state=PAUSED,search=acme,since=2h")
    assert query.saga == "order_fulfilment"
    assert query.states == ("FAILED", "PAUSED")
    assert query.text == "acme"
    assert query.since is not None
    assert datetime.now(UTC) - query.since == pytest.approx(timedelta(hours=2), abs=timedelta(1))
    assert parse_duration("15m") == timedelta(minutes=15)
    with pytest.raises(OpsError):
        parse_where("colour=red")


def test_an_action_id_survives_the_round_trip_through_the_codec() -> None:
    request = ActionRequest(
        "order_fulfilment", "order:1", OperatorActionKind.ABORT, "alice", "why", requested_now()
    )
    with examples.codec() as codec:
        headers, value = codec.encode(request.envelope())
        decoded = codec.decode(headers, value)
    payload = decoded.payload
    again = f"{payload.saga_id}:{payload.action.value}:{payload.requested_at.isoformat()}"
    assert again == request.id
    assert dict(headers)["saga_id"] == b"order:1"


def test_the_action_result_is_read_from_the_history() -> None:
    request = ActionRequest("s", "order:1", OperatorActionKind.RETRY, "bob", "", requested_now())
    body = {
        "state": "FAILED",
        "history": [{"id": request.id, "note": "ignored: rejected: retry applies to ..."}],
    }
    found = result_in(body, request)
    assert found is not None
    assert found.status == "rejected"
    assert result_in({"history": []}, request) is None


def test_a_skip_result_must_name_a_known_type() -> None:
    with examples.codec() as codec:
        good = '{"$type": "inventory.StockReserved", "order_id": "1", "reservation_id": "r"}'
        assert check_result(good, codec.classes).startswith('{"$type"')
        with pytest.raises(OpsError):
            check_result('{"order_id": "1"}', codec.classes)
        with pytest.raises(OpsError):
            check_result('{"$type": "nope.Nope"}', codec.classes)
        with pytest.raises(OpsError):
            check_result("not json", codec.classes)
