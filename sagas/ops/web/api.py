"""The dashboard's JSON API (described at ``/openapi.json``) and its live event stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterable
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

from sagas.ops.actions import KINDS
from sagas.ops.dlq import DeadLetters
from sagas.ops.errors import NotFoundError, OpsError
from sagas.ops.readmodel import Query as InstanceQuery
from sagas.ops.readmodel.stats import series, stats
from sagas.ops.views.diagram import diagram, mermaid
from sagas.ops.views.svg import diagram_svg
from sagas.ops.views.timeline import instance_view
from sagas.ops.web.state import WebState, check_token, web_state


class ErrorOut(BaseModel):
    """An error: ``detail`` says what went wrong (a list of problems for a 422)."""

    detail: Any


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorOut} for code in codes}


MAX_SECONDS = 10 * 366 * 86400
"""Longest look-back window accepted (ten years): longer ones cannot be a datetime."""
MAX_OFFSET = 10_000_000
"""Deepest page offset accepted (SQLite's integers are 64-bit; no read model is deeper)."""
Name = Annotated[str, Field(min_length=1, max_length=200)]
SagaId = Annotated[str, Field(min_length=1, max_length=500)]
Text = Annotated[str, Field(max_length=2000)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]

router = APIRouter(prefix="/api", responses=_errors(400, 404, 413, 503))
State = Annotated[WebState, Depends(web_state)]
bearer = HTTPBearer(auto_error=False, description="SAGAS_ADMIN_TOKEN")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
ActionName = Literal["retry", "abort", "resume", "pause", "unpause", "retry-now", "skip"]


def admin(state: State, credentials: Credentials) -> None:
    """Actions need the configured bearer token (403 without one configured, else 401)."""
    given = f"{credentials.scheme} {credentials.credentials}" if credentials else None
    check_token(state, given)


Admin = Annotated[None, Depends(admin)]
ADMIN_ERRORS = _errors(401, 403, 409)


class ActionIn(BaseModel):
    """An operator action for one saga."""

    saga: Name
    saga_id: SagaId
    action: ActionName
    step: Name | None = None
    result: dict[str, Any] | None = Field(
        None, description='SKIP: the reply, with its type: {"$type": "inventory.StockReserved"}'
    )
    actor: Name = "dashboard"
    reason: Text = ""


class Where(BaseModel):
    saga: Name | None = None
    states: list[Name] = Field([], max_length=20)
    since_seconds: Seconds | None = None
    search: Text | None = None


class BulkIn(BaseModel):
    """An operator action for every saga a query selects."""

    where: Where
    action: ActionName
    step: Name | None = None
    actor: Name = "dashboard"
    reason: Text = ""
    dry_run: bool = True


@router.get("/health")
async def health(state: State) -> dict[str, Any]:
    return {
        "ok": True,
        "kafka": state.config.bootstrap_servers is not None,
        "read_only": state.read_only,
        "version": state.follower.version if state.follower else 0,
    }


@router.get("/sagas")
async def sagas(state: State) -> dict[str, Any]:
    """Per saga type: live counts by state, and whether its definition is known here."""
    counts = await state.store.counts()
    names = sorted(set(counts) | set(state.definitions))
    return {
        "sagas": [
            {"saga": n, "counts": counts.get(n, {}), "defined": n in state.definitions}
            for n in names
        ]
    }


@router.get("/instances")
async def instances(
    state: State,
    saga: Annotated[str | None, Query(max_length=200)] = None,
    state_: Annotated[list[str], Query(alias="state", max_length=20)] = [],  # noqa: B006  # FastAPI idiom
    since_seconds: Annotated[float | None, Query(gt=0, le=MAX_SECONDS, allow_inf_nan=False)] = None,
    q: Annotated[str | None, Query(max_length=2000)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 25,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict[str, Any]:
    """A page of instances, latest update first."""
    since = datetime.now(UTC) - timedelta(seconds=since_seconds) if since_seconds else None
    query = InstanceQuery(saga or None, tuple(state_), since, q or None, limit, offset)
    rows, total = await state.store.select(query)
    return {"total": total, "limit": limit, "offset": offset, "items": [asdict(r) for r in rows]}


@router.get("/instances/{saga}/{saga_id:path}")
async def instance(
    state: State,
    saga: Annotated[str, Path(max_length=200)],
    saga_id: Annotated[str, Path(max_length=500)],
) -> dict[str, Any]:
    """One instance: summary, timeline, data, history, trace id."""
    return instance_view(await state.instance(saga, saga_id))


@router.get("/stuck")
async def stuck(
    state: State,
    saga: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    return {"items": [asdict(r) for r in await state.store.stuck(saga, limit)]}


@router.get("/stats")
async def stats_route(
    state: State,
    window_seconds: Annotated[float, Query(ge=1, le=MAX_SECONDS, allow_inf_nan=False)] = 3600,
    saga: Annotated[str | None, Query(max_length=200)] = None,
) -> Any:
    return await stats(state.store, timedelta(seconds=window_seconds), saga)


@router.get("/series")
async def series_route(
    state: State,
    window_seconds: Annotated[float, Query(ge=1, le=MAX_SECONDS, allow_inf_nan=False)] = 3600,
    buckets: Annotated[int, Query(ge=2, le=200)] = 24,
) -> Any:
    return await series(state.store, timedelta(seconds=window_seconds), buckets)


@router.get("/definitions/{saga}")
async def definition(state: State, saga: Annotated[str, Path(max_length=200)]) -> dict[str, Any]:
    found = state.definitions.get(saga)
    if found is None:
        raise NotFoundError(f"no definition {saga!r} in this dashboard")
    model = diagram(found)
    return {
        "saga": saga,
        "version": found.version,
        "mermaid": mermaid(model),
        "svg": diagram_svg(model),
    }


@router.post("/actions", responses=ADMIN_ERRORS)
async def act(state: State, _: Admin, body: ActionIn) -> dict[str, Any]:
    """Send an operator action and wait (bounded) until the engine applied it."""
    rows = await state.store.find(body.saga_id, body.saga)
    if not rows:
        raise NotFoundError(f"no saga {body.saga_id!r} of type {body.saga!r}")
    result_json = json.dumps(body.result) if body.result is not None else None
    results = await state.act(
        rows, KINDS[body.action], body.actor, body.reason, body.step, result_json
    )
    return results[0].as_dict()


@router.post("/actions/bulk", responses=ADMIN_ERRORS)
async def act_bulk(state: State, _: Admin, body: BulkIn) -> dict[str, Any]:
    """The same action for every saga the query selects (``dry_run``: only list them)."""
    w = body.where
    since = datetime.now(UTC) - timedelta(seconds=w.since_seconds) if w.since_seconds else None
    rows = await state.store.matching(InstanceQuery(w.saga, tuple(w.states), since, w.search))
    if body.dry_run:
        return {"dry_run": True, "targets": [asdict(r) for r in rows]}
    results = await state.act(rows, KINDS[body.action], body.actor, body.reason, body.step)
    return {"dry_run": False, "results": [r.as_dict() for r in results]}


LetterId = Annotated[str, Path(max_length=300)]


async def _letters(state: WebState) -> DeadLetters:
    if state.config.bootstrap_servers is None:
        raise OpsError("no Kafka configured")
    return DeadLetters(
        state.config.bootstrap_servers, state.config.topic_prefix, state.config.client_options
    )


@router.get("/dlq")
async def dlq_list(
    state: State,
    topic: Annotated[str | None, Query(max_length=249)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    async with await _letters(state) as dlq:
        return {"items": [d.summary() for d in await dlq.read(topic, limit)]}


@router.get("/dlq/{letter_id}")
async def dlq_show(state: State, letter_id: LetterId) -> dict[str, Any]:
    async with await _letters(state) as dlq:
        return (await dlq.get(letter_id)).detail()


@router.post("/dlq/{letter_id}/replay", responses=ADMIN_ERRORS)
async def dlq_replay(state: State, _: Admin, letter_id: LetterId) -> dict[str, Any]:
    async with await _letters(state) as dlq:
        done = await dlq.replay([await dlq.get(letter_id)])
    return {"id": done[0][0], "topic": done[0][1]}


@router.get("/events", response_class=EventSourceResponse)
async def events(state: State) -> AsyncIterable[ServerSentEvent]:
    """Server-sent events: ``changed`` whenever the read model took in new records."""
    follower = state.follower
    seen = follower.version if follower else 0
    yield ServerSentEvent(event="hello", data={"version": seen}, retry=2000)
    while not state.stopping.is_set():
        if follower is None:
            break
        version = await follower.wait_change(seen, 1.0)
        if version != seen:
            seen = version
            yield ServerSentEvent(event="changed", data={"version": version})
