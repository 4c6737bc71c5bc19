"""Topic creation and the default partitioner."""

from __future__ import annotations

import pytest

from sagas.runtime.errors import TopicSetupError
from sagas.runtime.topics import TopicSpec
from sagas.runtime.transport.base import Transport
from sagas.runtime.transport.records import OutRecord
from tests.contract.support import committed_transaction, unique

KEYS = [b"", b"a", b"order-1", b"order-2", b"saga-42", b"\x00\xff", b"0123456789abcdef"]
PARTITIONS_OF_4 = [1, 0, 2, 3, 3, 1, 0]
"""Where Kafka's default partitioner puts ``KEYS`` on four partitions (murmur2)."""


async def test_ensure_topics_creates_what_is_missing(transport: Transport) -> None:
    inbox, changelog, other = unique("inbox"), unique("changelog"), unique("dlq")
    specs = [TopicSpec(inbox, 2, co_partitioned=True), TopicSpec(changelog, 2, co_partitioned=True)]
    assert await transport.ensure_topics(specs, 1) == [inbox, changelog]
    assert await transport.ensure_topics(specs, 1) == []
    assert await transport.ensure_topics([*specs, TopicSpec(other, 1)], 1) == [other]
    # Only co-partitioned topics must keep their count.
    assert await transport.ensure_topics([TopicSpec(other, 3)], 1) == []
    with pytest.raises(TopicSetupError):
        await transport.ensure_topics([TopicSpec(inbox, 3, co_partitioned=True)], 1)


async def test_the_default_partitioner_is_kafkas(transport: Transport) -> None:
    topic = unique("keyed")
    await transport.ensure_topics([TopicSpec(topic, 4)], 1)
    delivered = await committed_transaction(
        transport, [OutRecord(topic, b"v", key=k) for k in KEYS]
    )
    assert [d.partition for d in delivered] == PARTITIONS_OF_4
