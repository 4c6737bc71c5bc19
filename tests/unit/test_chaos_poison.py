"""The poison records of the chaos runner: each kind is refused by the codec every
consumer uses, with the reason the dead-letter test expects; the consumed topics."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagas.chaos.faults.base import ChaosContext
from sagas.chaos.faults.poison import PoisonMaker, consumed_topics, poison_key
from sagas.contracts.codec import Codec
from sagas.contracts.errors import MessageError
from services.app import app as examples

REASONS = {
    "random_bytes": "bad-magic-byte",
    "truncated_avro": "payload-corrupt",
    "unknown_schema": "unknown-schema",
    "missing_headers": "header-missing",
    "forged_type": "type-mismatch",
    "bad_ce_id": "header-invalid",
}


@pytest.fixture
def codec() -> Iterator[Codec]:
    with examples.codec() as built:
        yield built


def context(codec: Codec, seed: int, **fields: Any) -> ChaosContext:
    return ChaosContext(
        system=None,  # type: ignore[arg-type]  # neither the maker nor the topics use it
        broker=None,  # type: ignore[arg-type]
        bootstrap_servers="",
        direct_servers="",
        codec=codec,
        prefix="p.",
        workdir=Path("."),
        rng=random.Random(seed),
        **fields,
    )


@pytest.mark.parametrize("seed", range(20))
def test_every_poison_kind_is_refused_with_its_reason(codec: Codec, seed: int) -> None:
    maker = PoisonMaker(context(codec, seed))
    for kind, reason in REASONS.items():
        headers, value = getattr(maker, kind)()
        with pytest.raises(MessageError) as caught:
            codec.decode(headers, value)
        assert caught.value.reason == reason, kind


def test_an_oversized_value_passes_the_limit_by_one_byte(codec: Codec) -> None:
    headers, value = PoisonMaker(context(codec, 1)).oversized(codec.max_payload_bytes + 1 - 5)
    assert len(value) == codec.max_payload_bytes + 1
    with pytest.raises(MessageError) as caught:
        codec.decode(headers, value)
    assert caught.value.reason == "payload-too-large"


def test_keys_are_unique_and_name_their_kind(codec: Codec) -> None:
    ctx = context(codec, 3)
    keys = {poison_key(ctx, "forged_type") for _ in range(1000)}
    assert len(keys) == 1000
    assert all(k.startswith("chaos-poison:forged_type:") for k in keys)


def test_consumed_topics_follow_what_runs(codec: Codec) -> None:
    existing = {
        "p.sagas.order_fulfilment.inbox",
        "p.orders.events",
        "p.hr.events",
        "p.inventory.commands",
        "p.payments.commands",
        "p.sagas.events",
        "p.sagas.order_fulfilment.changelog",
        "other.inventory.commands",
    }
    ctx = context(codec, 0, engines=["engine-1"], services=["inventory", "orders"])
    assert consumed_topics(ctx, existing) == [
        "p.inventory.commands",
        "p.orders.events",
        "p.sagas.order_fulfilment.inbox",
    ]
    ctx.notes["read_model"] = True
    assert "p.sagas.events" in consumed_topics(ctx, existing)
    assert consumed_topics(context(codec, 0, services=["hr"]), existing) == ["p.hr.events"]
