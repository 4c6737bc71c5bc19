"""Count the records of a phase's topics, and from them the messages a saga costs.

Every record the engine consumes and produces counts, the changelog included:

- consumed: every record of ``orders.events`` (the engine reads the whole topic, the
  end events it publishes itself too; a start is decided where it lands) and of the
  saga inbox (the participants' replies, and any event forwarded because it landed in
  another unit than its saga's);
- produced: the forwarded events (inbox records that are not replies), the commands,
  the end events, the outcome events on ``sagas.events``, the changelog records and any
  dead letters.

Counted with ``read_committed`` after a drained run, so aborted records and
transaction markers are not counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from sagas.bench.harness import SAGA
from sagas.contracts import topics

COMMAND_TOPICS = tuple(topics.commands(s) for s in ("inventory", "payments", "shipping"))
"""The order saga's command topics (logical names)."""


async def count_records(bootstrap: str, prefix: str, idle_s: float = 1.5) -> dict[str, int]:
    """Committed records per topic (logical name, prefix removed) of every topic of ``prefix``."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ours = {
            t: name
            for t in await admin.list_topics()
            if (name := topics.logical(prefix, t)) is not None
        }
        metas = await admin.describe_topics(sorted(ours))
    finally:
        await admin.close()
    tps = [TopicPartition(m["topic"], p["partition"]) for m in metas for p in m["partitions"]]
    await consumer.start()
    counts: dict[str, int] = {}
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        last = time.monotonic()
        deadline = last + 60
        while time.monotonic() - last < idle_s and time.monotonic() < deadline:
            data = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in data.items():
                if records:
                    last = time.monotonic()
                    name = ours[tp.topic]
                    counts[name] = counts.get(name, 0) + len(records)
    finally:
        await consumer.stop()
    return counts


@dataclass(frozen=True)
class MessageCount:
    """Messages the engine consumed and produced for ``sagas`` completed sagas."""

    sagas: int
    consumed: int
    produced: int
    by_topic: dict[str, int]

    @property
    def per_saga(self) -> float:
        return (self.consumed + self.produced) / self.sagas

    @property
    def routed_starts(self) -> int:
        """Events forwarded onto the saga inbox (inbox records that are not replies):
        an event that landed in another unit than its saga's costs its saga a hop."""
        inbox = self.by_topic.get(topics.inbox(SAGA), 0)
        return inbox - sum(self.by_topic.get(t, 0) for t in COMMAND_TOPICS)


def engine_messages(counts: dict[str, int], placed: int) -> MessageCount:
    """What the engine consumed and produced, from a drained run's record counts."""
    inbox = counts.get(topics.inbox(SAGA), 0)
    events = counts.get(topics.events("orders"), 0)
    replies = sum(counts.get(t, 0) for t in COMMAND_TOPICS)  # one reply per command
    consumed = events + inbox
    produced = (
        (inbox - replies)  # forwarded events
        + replies  # commands
        + (events - placed)  # end events
        + counts.get(topics.OUTCOMES, 0)
        + counts.get(topics.changelog(SAGA), 0)
        + counts.get(topics.dead_letters(SAGA), 0)
        + counts.get(topics.ROUTER_DEAD_LETTERS, 0)
    )
    return MessageCount(placed, consumed, produced, dict(counts))
