"""Finding topics and their partitions (the admin client's metadata is always fresh)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from sagas.ops.errors import KafkaUnavailableError


class Topics:
    """Lists topics and their partitions. Use ``async with``."""

    def __init__(self, bootstrap_servers: str, client_options: dict[str, Any] | None = None):
        self._admin = AIOKafkaAdminClient(
            bootstrap_servers=bootstrap_servers, **(client_options or {})
        )

    async def __aenter__(self) -> Topics:
        try:
            await self._admin.start()
        except KafkaError as exc:
            await self._admin.close()
            raise KafkaUnavailableError(f"cannot reach Kafka: {exc}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._admin.close()

    async def partitions(self, wanted: Callable[[str], bool]) -> dict[str, list[int]]:
        """The partitions of every topic whose name ``wanted`` accepts."""
        names = [t for t in await self._admin.list_topics() if wanted(t)]
        if not names:
            return {}
        found: dict[str, list[int]] = {}
        for meta in await self._admin.describe_topics(names):
            if meta.get("error_code", 0) == 0:
                found[meta["topic"]] = sorted(int(p["partition"]) for p in meta["partitions"])
        return found
