"""Operator actions: sent as `sagas.OperatorAction` messages to the saga's inbox.

An action travels like every other input (keyed by saga id, ``saga_id`` header,
CloudEvents headers from the codec), so the engine applies it in the same exactly-once
transaction as replies and timers. The engine names the action in the instance history
with the id ``<saga id>:<ACTION>:<requested_at ISO 8601>`` (`sagas.contracts.actions`);
watching the read model for that entry tells whether (and how) the action was applied.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from sagas.contracts import actions, topics
from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import OperatorAction, OperatorActionKind
from sagas.contracts.record import Envelope
from sagas.definition import Saga
from sagas.machine.serialize import record_from_dict
from sagas.ops.errors import KafkaUnavailableError, OpsError
from sagas.ops.readmodel.store import OpsStore

SOURCE = "/sagas/ops"

KINDS = {k.value.lower().replace("_", "-"): k for k in OperatorActionKind}
"""Action names as the CLI and the API spell them (``retry-now``) to their kind."""


@dataclass(frozen=True)
class ActionRequest:
    """One operator action for one saga instance."""

    saga: str
    saga_id: str
    kind: OperatorActionKind
    actor: str
    reason: str
    requested_at: datetime
    step: str | None = None
    result_json: str | None = None

    @property
    def id(self) -> str:
        """The id the engine records the action under."""
        return actions.action_id(self.saga_id, self.kind, self.requested_at)

    def envelope(self) -> Envelope:
        record = OperatorAction(
            saga_id=self.saga_id,
            action=self.kind,
            step=self.step,
            result_json=self.result_json,
            actor=self.actor,
            reason=self.reason,
            requested_at=self.requested_at,
        )
        return Envelope(
            id=self.id,
            type=OperatorAction.SCHEMA,
            source=SOURCE,
            time=self.requested_at,
            payload=record,
            saga_id=self.saga_id,
        )


def requested_now() -> datetime:
    """Now, to the millisecond: the Avro field keeps milliseconds, and the action id
    must read the same after the round trip."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def check_result(result_json: str, classes: ClassMap, definition: Saga[Any] | None = None) -> str:
    """Validate a SKIP result (a record as JSON with its ``$type``); return it compact.

    Raises:
        OpsError: not JSON, no ``$type``, an unknown type, or fields that do not fit.
    """
    try:
        data = json.loads(result_json)
    except json.JSONDecodeError as exc:
        raise OpsError(f"--result is not JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("$type"), str):
        raise OpsError('--result must be an object naming its type, e.g. {"$type": "x.Y", ...}')
    if data["$type"] not in classes:
        raise OpsError(f"--result: unknown message type {data['$type']!r}")
    if definition is not None:
        try:
            record_from_dict(definition, data, extra_types=[classes.get(data["$type"])])
        except (TypeError, ValueError) as exc:
            raise OpsError(f"--result does not fit {data['$type']}: {exc}") from exc
    return json.dumps(data, separators=(",", ":"))


class Sender:
    """Produces operator actions (idempotent producer). Use ``async with``."""

    def __init__(
        self,
        bootstrap_servers: str,
        codec: Codec,
        topic_prefix: str = "",
        client_options: dict[str, Any] | None = None,
        key_of: Callable[[str, str], bytes] | None = None,
    ) -> None:
        """``key_of(saga, saga_id)``: the Kafka key that lands in the saga's partition
        (`sagas.runtime.partitioning.Partitioning.key`; the saga id by default)."""
        self._key_of = key_of or (lambda saga, saga_id: saga_id.encode())
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers,
            enable_idempotence=True,
            **(client_options or {}),
        )
        self._codec = codec
        self._prefix = topic_prefix

    async def __aenter__(self) -> Sender:
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()
            raise KafkaUnavailableError(f"cannot reach Kafka: {exc}") from exc
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._producer.stop()

    async def send(self, requests: Sequence[ActionRequest]) -> None:
        """Produce every request to its saga's inbox and wait for the acknowledgements."""
        futures = []
        for req in requests:
            headers, value = self._codec.encode(req.envelope())
            futures.append(
                await self._producer.send(
                    topics.physical(self._prefix, topics.inbox(req.saga)),
                    value,
                    key=self._key_of(req.saga, req.saga_id),
                    headers=headers,
                )
            )
        try:
            await asyncio.gather(*futures)
        except KafkaError as exc:
            raise KafkaUnavailableError(f"cannot send the operator actions: {exc}") from exc


@dataclass(frozen=True)
class ActionResult:
    """What became of one action."""

    request: ActionRequest
    status: str
    """``applied``, ``rejected`` (the engine recorded why), or ``pending`` (not seen in
    the history before the deadline: is an engine running?)."""
    note: str | None = None
    state: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "saga": self.request.saga,
            "saga_id": self.request.saga_id,
            "action": self.request.kind.value,
            "action_id": self.request.id,
            "status": self.status,
            "note": self.note,
            "state": self.state,
        }


def result_in(body: dict[str, Any] | None, req: ActionRequest) -> ActionResult | None:
    """The result of ``req`` if its history entry is in the stored instance."""
    for entry in (body or {}).get("history") or []:
        if entry.get("id") == req.id:
            note = str(entry.get("note") or "")
            status = "rejected" if note.startswith("ignored:") else "applied"
            return ActionResult(req, status, note, str((body or {}).get("state")))
    return None


async def wait_applied(
    store: OpsStore,
    requests: Sequence[ActionRequest],
    deadline: timedelta,
    refresh: Callable[[], Awaitable[None]],
) -> list[ActionResult]:
    """Wait (calling ``refresh`` between looks) until the engine recorded every action.

    Actions not seen before the deadline come back with status ``pending``.
    """
    done: dict[str, ActionResult] = {}
    end = time.monotonic() + deadline.total_seconds()
    while True:
        for req in requests:
            if req.id not in done:
                found = result_in(await store.body(req.saga, req.saga_id), req)
                if found is not None:
                    done[req.id] = found
        if len(done) == len(requests) or time.monotonic() >= end:
            break
        await refresh()
    return [done.get(r.id) or ActionResult(r, "pending") for r in requests]
