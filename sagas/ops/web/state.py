"""The dashboard's configuration and the clients its requests share."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import HTTPException, Request, status

from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import OperatorActionKind
from sagas.definition import Saga
from sagas.kafka_security import client_options
from sagas.ops.actions import (
    ActionRequest,
    ActionResult,
    Sender,
    check_result,
    requested_now,
    wait_applied,
)
from sagas.ops.errors import NotFoundError, OpsError
from sagas.ops.readmodel import Follower, InstanceRow, OpsStore
from sagas.settings import EngineSettings, KafkaSettings, OpsSettings

if TYPE_CHECKING:
    from sagas.app import App


@dataclass(frozen=True)
class WebConfig:
    """Everything the dashboard needs; `WebConfig.from_env` reads the settings.

    Attributes:
        ops_db: the read model's SQLite file.
        bootstrap_servers: Kafka; ``None`` serves the read model as it is, read-only.
        topic_prefix: ``SAGAS_TOPIC_PREFIX``.
        app: the project's app: its saga definitions (drawn, named in actions) and
            message contracts (the codec of the follower and of operator actions).
        admin_token: the bearer token actions need; ``None``: read-only.
        jaeger_url: base URL of Jaeger's UI, for trace links.
        action_timeout: how long an action waits for the engine to apply it.
        client_options: aiokafka security options (`sagas.kafka_security`).
        kafka: the settings they were built from (for the start-up access check).
        cors_origins: origins allowed cross-origin requests; empty (the default): none.
    """

    ops_db: Path
    bootstrap_servers: str | None
    app: App
    topic_prefix: str = ""
    admin_token: str | None = None
    jaeger_url: str | None = None
    action_timeout: timedelta = timedelta(seconds=30)
    # Holds the SASL password in clear: kept out of repr (and so out of any log line).
    client_options: dict[str, Any] = field(default_factory=dict, repr=False)
    kafka: KafkaSettings | None = None
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, app: App) -> WebConfig:
        ops = OpsSettings()
        token = ops.admin_token.get_secret_value() if ops.admin_token else None
        kafka = KafkaSettings()
        return cls(
            ops_db=ops.ops_db,
            bootstrap_servers=kafka.bootstrap_servers,
            client_options=client_options(kafka),
            kafka=kafka,
            topic_prefix=EngineSettings().topic_prefix,
            app=app,
            admin_token=token or None,
            jaeger_url=ops.jaeger_url,
            action_timeout=ops.ops_action_timeout,
            cors_origins=tuple(o.strip() for o in ops.web_cors_origins.split(",") if o.strip()),
        )


@dataclass
class WebState:
    """The clients one dashboard process shares between requests."""

    config: WebConfig
    store: OpsStore
    codec: Codec
    follower: Follower | None
    sender: Sender | None
    stopping: asyncio.Event

    @property
    def definitions(self) -> dict[str, Saga[Any]]:
        return dict(self.config.app.latest)

    def definition(self, saga: str, version: int | None = None) -> Saga[Any] | None:
        """The definition of that version, else the latest one of that name."""
        exact = [d for d in self.config.app.sagas if d.name == saga and d.version == version]
        return exact[0] if exact else self.definitions.get(saga)

    @property
    def read_only(self) -> bool:
        return self.config.admin_token is None or self.sender is None

    async def instance(self, saga: str, saga_id: str) -> dict[str, Any]:
        body = await self.store.body(saga, saga_id)
        if body is None:
            raise NotFoundError(f"no saga {saga_id!r} of type {saga!r}")
        return body

    async def act(
        self,
        rows: Sequence[InstanceRow],
        kind: OperatorActionKind,
        actor: str,
        reason: str,
        step: str | None = None,
        result_json: str | None = None,
    ) -> list[ActionResult]:
        """Send an action to each saga and wait until the engine applied them."""
        if self.sender is None:
            raise OpsError("no Kafka configured: actions cannot be sent")
        if result_json is not None:
            names = {r.saga_name for r in rows}
            definition = self.definitions.get(next(iter(names))) if len(names) == 1 else None
            result_json = check_result(result_json, self.codec.classes, definition)
        at = requested_now()
        requests = [
            ActionRequest(r.saga_name, r.saga_id, kind, actor, reason, at, step, result_json)
            for r in rows
        ]
        await self.sender.send(requests)
        follower = self.follower
        seen = follower.version if follower else 0

        async def refresh() -> None:
            nonlocal seen
            if follower is not None:
                seen = await follower.wait_change(seen, 0.5)

        return await wait_applied(self.store, requests, self.config.action_timeout, refresh)


def web_state(request: Request) -> WebState:
    state: WebState = request.app.state.web
    return state


def check_token(state: WebState, authorization: str | None) -> None:
    """403 when actions are off (no token configured), 401 when the token is missing or
    wrong; compared in constant time."""
    token = state.config.admin_token
    if token is None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "actions are disabled: SAGAS_ADMIN_TOKEN is not set"
        )
    given = (authorization or "").encode()
    if not hmac.compare_digest(given, f"Bearer {token}".encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "a valid bearer token is needed",
            headers={"WWW-Authenticate": "Bearer"},
        )
