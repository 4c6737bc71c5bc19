"""The topics of a saga and their creation at start-up.

The names are defined in `sagas.contracts.topics` (DESIGN.md §3) and imported here
too, so the engine's modules take names and topic specs from one module.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from sagas.contracts.topics import (
    OUTCOMES,
    READ_MODEL_DEAD_LETTERS,
    ROUTER_DEAD_LETTERS,
    changelog,
    commands,
    dead_letters,
    events,
    history,
    inbox,
)
from sagas.runtime.errors import TopicSetupError

__all__ = [
    "OUTCOMES",
    "READ_MODEL_DEAD_LETTERS",
    "ROUTER_DEAD_LETTERS",
    "TopicSpec",
    "changelog",
    "commands",
    "dead_letters",
    "ensure_topics",
    "events",
    "history",
    "inbox",
    "saga_topics",
    "wait_until_ready",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    configs: dict[str, str] = field(default_factory=dict)
    co_partitioned: bool = False
    """Whether an existing topic must have exactly ``partitions`` (inbox, changelog)."""


def saga_topics(saga: str, partitions: int) -> list[TopicSpec]:
    """The inbox, its co-partitioned compacted changelog and history, and the
    dead-letter topic."""
    return [
        TopicSpec(inbox(saga), partitions, co_partitioned=True),
        TopicSpec(
            changelog(saga),
            partitions,
            {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
            co_partitioned=True,
        ),
        TopicSpec(history(saga), partitions, {"cleanup.policy": "compact"}, co_partitioned=True),
        TopicSpec(dead_letters(saga), 1),
    ]


async def wait_until_ready(
    admin: AIOKafkaAdminClient, names: Iterable[str], deadline_s: float = 30.0
) -> None:
    """Wait until every topic is in the metadata with a leader for each partition.

    Creating a topic returns before every broker knows it; a consumer that subscribes
    in between does not see the topic and (faust) ignores it until the next rebalance.
    """
    wanted = list(names)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while True:
        metas = await admin.describe_topics(wanted)
        ready = {
            m["topic"]
            for m in metas
            if m.get("error_code", 0) == 0
            and m["partitions"]
            and all(p.get("leader", -1) >= 0 for p in m["partitions"])
        }
        missing = sorted(set(wanted) - ready)
        if not missing:
            return
        if loop.time() > end:
            raise TopicSetupError(f"topics not ready after {deadline_s:.0f}s: {', '.join(missing)}")
        await asyncio.sleep(0.2)  # polling interval: topic metadata propagates


async def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    replication_factor: int,
    client_options: dict[str, Any] | None = None,
) -> list[str]:
    """Create the topics that are missing; return the names created.

    An existing inbox or changelog with another partition count is an error:
    co-partitioning would break. Other topics are used as they are.
    """
    wanted = {s.name: s for s in specs}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, **(client_options or {}))
    try:
        await admin.start()
        existing = await admin.describe_topics(list(wanted))
        present: dict[str, int] = {}
        for meta in existing:
            if meta.get("error_code", 0) == 0:
                present[meta["topic"]] = len(meta["partitions"])
        for name, count in present.items():
            spec = wanted[name]
            if spec.co_partitioned and count != spec.partitions:
                raise TopicSetupError(
                    f"topic {name} has {count} partitions, configuration says "
                    f"{spec.partitions}: inbox and changelog must be co-partitioned"
                )
        missing = [s for n, s in wanted.items() if n not in present]
        if missing:
            # Another process may create them at the same time.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [
                        NewTopic(s.name, s.partitions, replication_factor, topic_configs=s.configs)
                        for s in missing
                    ]
                )
            log.info("created topics %s", ", ".join(s.name for s in missing))
        await wait_until_ready(admin, wanted)
        return [s.name for s in missing]
    except KafkaError as exc:
        raise TopicSetupError(f"cannot create or inspect topics: {exc}") from exc
    finally:
        await admin.close()
