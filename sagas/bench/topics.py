"""Topics a bench process creates for itself (when missing), ready before it uses them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


async def create_topics(
    bootstrap: str, partitions: Mapping[str, int], deadline_s: float = 30.0
) -> None:
    """Create the topics of ``partitions`` (name -> count) that are missing, and wait
    until every partition has a leader. Another process may create them meanwhile (the
    engine creates the command topics with the same count): that is fine."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for name, count in partitions.items():
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(name, count, 1)])
        async with asyncio.timeout(deadline_s):
            while True:
                metas = await admin.describe_topics(list(partitions))
                if all(
                    m.get("error_code", 0) == 0
                    and m["partitions"]
                    and all(p["leader"] >= 0 for p in m["partitions"])
                    for m in metas
                ):
                    return
                await asyncio.sleep(0.1)  # poll interval while the partitions get leaders
    finally:
        await admin.close()
