"""The faust app of a participant: agents over raw bytes, and the web endpoints.

faust is imported here only, when a service starts: defining a participant, listing its
usages (``sagas check``) or unit-testing its processor never imports it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from sagas.participant.processor import Incoming

if TYPE_CHECKING:
    from sagas.participant.service import ParticipantService


def build_app(service: ParticipantService) -> Any:
    """A faust app consuming the service's topics with read_committed (see `service`)."""
    import faust

    from sagas.kafka_security import faust_credentials

    settings = service.settings
    name = service.participant.name
    port = service.web_port
    app = faust.App(
        settings.group(name),
        broker=[f"kafka://{server}" for server in service.bootstrap.split(",")],
        broker_credentials=faust_credentials(service.kafka) if service.kafka else None,
        store="memory://",
        datadir=str(settings.data_dir / f"faust-{settings.group(name)}"),
        processing_guarantee="exactly_once",
        consumer_auto_offset_reset="earliest",
        topic_partitions=settings.topic_partitions,
        autodiscover=False,
        web_enabled=port > 0,
        web_bind="127.0.0.1",
        web_host="127.0.0.1",
        web_port=port if port > 0 else 6066,
    )
    topics = [service.commands_topic] if service.participant.handlers else []
    topics += sorted({service.topic(s.topic) for s in service.participant.subscriptions})
    for topic_name in topics:
        _add_agent(app, service, topic_name)
    if port > 0:
        _add_pages(app, service)
    return app


def _add_agent(app: Any, service: ParticipantService, topic_name: str) -> None:
    topic = app.topic(
        topic_name,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )

    async def agent(stream: Any) -> AsyncIterator[None]:
        async for event in stream.events():
            message = event.message
            record = Incoming(
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value,
                headers=list(message.headers or ()),
            )
            await service.process(topic_name, record)
            yield None

    app.agent(topic, name=f"{app.conf.id}.{topic_name}")(agent)


def _add_pages(app: Any, service: ParticipantService) -> None:
    import faust.web

    async def health(web: Any, request: Any) -> Any:
        return web.json(
            {
                "service": service.participant.name,
                "status": "ok",
                "processed": await service.store.processed_count(),
            }
        )

    async def invariants(web: Any, request: Any) -> Any:
        broken = await service.invariants()
        return web.json({"ok": not broken, "broken": broken}, status=200 if not broken else 500)

    app.page("/health")(health)
    app.page("/invariants")(invariants)
    for path in service.participant.routes:
        app.page(path)(_post_view(faust.web.View, service, path))


def _post_view(base: type[Any], service: ParticipantService, path: str) -> type[Any]:
    async def post(self: Any, request: Any) -> Any:
        try:
            body = await request.json()
            result = await service.handle_route(path, body)
        except (ValueError, TypeError, KeyError) as exc:
            return self.json({"error": str(exc)}, status=400)
        return self.json(result, status=201)

    return type("PostRoute", (base,), {"post": post})
