"""Dead-letter tools against hostile dead letters: huge values, forged replay targets."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from sagas.ops.dlq import MAX_SHOWN_BYTES, DeadLetter, DeadLetters
from sagas.ops.errors import OpsError


def letter(value: bytes, target: str = "p.sagas.x.inbox") -> DeadLetter:
    headers = (("dlq_reason", b"payload-too-large"), ("dlq_topic", target.encode()))
    return DeadLetter("sagas.x.dlq", 0, 7, datetime.now(UTC), b"k", value, headers)


def test_a_huge_value_is_shown_in_part_with_its_size() -> None:
    doc = letter(b"a" * (MAX_SHOWN_BYTES * 3)).detail()
    assert doc["size"] == MAX_SHOWN_BYTES * 3
    assert doc["truncated"] is True
    assert len(doc["value_text"]) == MAX_SHOWN_BYTES
    assert len(doc["value_hex"]) == 2 * MAX_SHOWN_BYTES
    small = letter(b"abc").detail()
    assert (small["truncated"], small["value_text"]) == (False, "abc")


@pytest.mark.parametrize(
    "target",
    ["p.sagas.x.changelog", "p.sagas.router.dlq", "other.orders.events", "__consumer_offsets"],
)
def test_replay_refuses_a_target_that_is_not_an_input_of_this_system(target: str) -> None:
    letters = DeadLetters("127.0.0.1:1", topic_prefix="p.")
    with pytest.raises(OpsError, match="will not replay"):
        letters._check_target(letter(b"v", target), target)


def test_replay_accepts_an_input_topic() -> None:
    letters = DeadLetters("127.0.0.1:1", topic_prefix="p.")
    for target in ("p.sagas.x.inbox", "p.orders.events", "p.inventory.commands"):
        letters._check_target(letter(b"v", target), target)
