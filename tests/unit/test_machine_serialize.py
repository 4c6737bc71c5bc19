"""Instances to and from JSON: every field round-trips, and instances stored before a
field existed read with its default."""

from __future__ import annotations

import json

from sagas import decide
from sagas.machine import instance_from_dict, instance_to_dict
from sagas.machine.codec import JSON
from tests.unit.saga_fixtures import (
    T0,
    ParcelDelivered,
    envelope,
    order_saga,
    parallel_saga,
    placed,
)

SAGA = order_saga()


def stored_before(body: dict[str, JSON], step_fields: tuple[str, ...]) -> dict[str, JSON]:
    """``body`` as an older engine stored it: without the fields added since."""
    old = json.loads(json.dumps(body))
    for step in old["steps"]:
        for name in step_fields:
            del step[name]
    return dict(old)


def test_an_instance_stored_before_unanswered_existed_reads_with_the_default() -> None:
    instance = decide(SAGA, None, placed(), T0).instance
    assert instance is not None
    assert instance.step("reserve_stock").unanswered  # its command is in flight
    body = instance_to_dict(instance)
    assert instance_from_dict(SAGA, json.loads(json.dumps(body))) == instance
    old = instance_from_dict(SAGA, stored_before(body, ("unanswered",)))
    assert not old.step("reserve_stock").unanswered


def test_an_early_event_stored_before_in_reply_to_existed_reads_with_the_default() -> None:
    saga = parallel_saga()
    instance = decide(saga, None, placed(), T0).instance
    assert instance is not None
    instance = decide(saga, instance, envelope(ParcelDelivered(order_id="o-1"), "p-1"), T0).instance
    assert instance is not None
    assert len(instance.early) == 1
    body = json.loads(json.dumps(instance_to_dict(instance)))
    assert instance_from_dict(saga, body) == instance
    for kept in body["early"]:
        del kept["in_reply_to"]
    assert instance_from_dict(saga, body).early[0].in_reply_to is None
