"""The payments service on the real broker: decline over limit, hold, capture, void,
and one side effect for a command delivered twice."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from sagas.contracts.codec import Codec
from sagas.participant.testing import Wire, new_prefix, running
from services import payments
from services.app import app as examples
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
    DeclineReason,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentDeclined,
    PaymentVoided,
    VoidPayment,
)
from tests.conftest import MakeTopic

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def codec() -> Iterator[Codec]:
    with examples.codec() as codec:
        yield codec


def authorize(order_id: str, amount: str) -> AuthorizePayment:
    return AuthorizePayment(
        order_id=order_id, customer_id="c-1", amount=Decimal(amount), currency="EUR"
    )


async def test_authorize_capture_void_and_idempotency(
    kafka_bootstrap: str, make_topic: MakeTopic, tmp_path: Path, codec: Codec
) -> None:
    prefix = new_prefix()
    commands = f"{prefix}payments.commands"
    replies = await make_topic("replies")
    async with (
        running(payments.participant(), kafka_bootstrap, tmp_path, codec, prefix) as service,
        Wire(kafka_bootstrap, codec, replies) as wire,
    ):
        await wire.send(commands, authorize("o-1", "500.01"), "o-1:auth:1", "order:o-1")
        for _ in range(2):  # the same command id twice: one hold
            await wire.send(commands, authorize("o-2", "100.00"), "o-2:auth:1", "order:o-2")
        await wire.send(commands, authorize("o-3", "40.00"), "o-3:auth:1", "order:o-3")
        got = await wire.replies_until(lambda r: len(r) == 4)

        by_saga = {e.saga_id: e.payload for e in got}
        assert by_saga["order:o-1"] == PaymentDeclined(
            order_id="o-1", reason=DeclineReason.LIMIT_EXCEEDED
        )
        held, other = by_saga["order:o-2"], by_saga["order:o-3"]
        assert isinstance(held, PaymentAuthorized)
        assert isinstance(other, PaymentAuthorized)
        twice = [r for r in wire.received if r.key == b"order:o-2"]
        assert twice[0].value == twice[1].value
        assert await payments.account_of(service.store.db, "c-1") == (
            Decimal("860.00"),
            Decimal("140.00"),
            Decimal("0.00"),
        )

        capture = CapturePayment(
            order_id="o-2", authorization_id=held.authorization_id, amount=Decimal("100.00")
        )
        await wire.send(commands, capture, "o-2:capture:1", "order:o-2")
        void = VoidPayment(order_id="o-3", authorization_id=other.authorization_id)
        await wire.send(commands, void, "o-3:void:1", "order:o-3")
        got = await wire.replies_until(lambda r: len(r) == 6)

        assert isinstance(got[4].payload, PaymentCaptured | PaymentVoided)
        assert {type(e.payload) for e in got[4:]} == {PaymentCaptured, PaymentVoided}
        assert await payments.account_of(service.store.db, "c-1") == (
            Decimal("900.00"),
            Decimal("0.00"),
            Decimal("100.00"),
        )
        assert await service.invariants() == []
