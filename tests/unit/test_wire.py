"""`sagas.runtime.wire`: the core's outgoing messages as Kafka records."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from sagas.contracts.codec import Codec
from sagas.contracts.factory import build_codec
from sagas.contracts.messages.access import GrantCloudAccess, RevokeCloudAccess
from sagas.contracts.record import Record
from sagas.machine import Outgoing, OutgoingKind
from sagas.runtime import wire

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@pytest.fixture
def codec() -> Iterator[Codec]:
    with build_codec() as built:
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
    record = wire.encode(out, None, NOW, codec, codec.classes)
    headers = dict(record.headers)
    assert headers["compensates"] == b"employee:e-1:grant_access:1,employee:e-1:grant_access:2"
    assert record.headers[-1][0] == "content-type"  # still last
    decoded = codec.decode(record.headers, record.value)
    assert decoded.payload == revoke


def test_a_command_has_no_compensates_header(codec: Codec) -> None:
    grant = GrantCloudAccess(employee_id="e-1", roles=("developer",))
    out = outgoing(OutgoingKind.COMMAND, "employee:e-1:grant_access:1", grant)
    record = wire.encode(out, None, NOW, codec, codec.classes)
    assert "compensates" not in dict(record.headers)
