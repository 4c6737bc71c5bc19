"""The router without a broker: which sagas a domain event concerns, under which id."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

from sagas.contracts.record import Envelope, Record
from sagas.runtime.engine import by_name
from sagas.runtime.router import Route, Router, event_topics
from services.definitions.onboarding import ONBOARDING
from services.definitions.order_fulfilment import ORDER_FULFILMENT
from services.messages.assets import LaptopDelivered
from tests.integration.engine_support import order_placed

NOW = datetime(2030, 1, 1, tzinfo=UTC)
ONBOARDING_V2 = dataclasses.replace(
    ONBOARDING,
    version=2,
    steps=tuple(s for s in ONBOARDING.steps if s.name != "laptop_delivered"),
)


def envelope(payload: Record) -> Envelope:
    return Envelope(id="e-1", type=payload.SCHEMA, source="/tests", time=NOW, payload=payload)


def delivered(employee_id: str) -> LaptopDelivered:
    return LaptopDelivered(employee_id=employee_id, asset_tag="tag-1", delivered_at=NOW)


def test_a_start_event_routes_to_its_saga_under_the_templated_id() -> None:
    router = Router(by_name([ORDER_FULFILMENT, ONBOARDING]))
    assert router.routes(envelope(order_placed("o-7"))) == [Route("order_fulfilment", "order:o-7")]


def test_an_event_no_saga_cares_about_has_no_route() -> None:
    router = Router(by_name([ONBOARDING_V2]))  # v2 no longer waits for deliveries
    assert router.routes(envelope(delivered("e-1"))) == []
    assert router.routes(envelope(order_placed("o-1"))) == []


def test_an_older_versions_awaited_event_is_still_routed() -> None:
    # Instances of v1 still wait for LaptopDelivered; v2 alone would not read assets.events.
    both = by_name([ONBOARDING, ONBOARDING_V2])
    assert Router(both).routes(envelope(delivered("e-3"))) == [Route("onboarding", "employee:e-3")]
    assert "assets.events" in event_topics(both)
    assert "assets.events" not in event_topics(by_name([ONBOARDING_V2]))
