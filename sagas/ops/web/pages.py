"""The dashboard's HTML pages, rendered on the server (Jinja2, autoescaped).

Every value from a message goes through the template's escaping; the SVGs are built by
`sagas.ops.views.svg`, which escapes its texts, and are the only markup marked safe.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import jinja2
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from sagas.ops.readmodel import Query as InstanceQuery
from sagas.ops.readmodel.stats import series
from sagas.ops.views.diagram import diagram, mermaid
from sagas.ops.views.svg import diagram_svg, gantt_svg, line_chart
from sagas.ops.views.timeline import instance_view
from sagas.ops.web.api import MAX_OFFSET, _letters
from sagas.ops.web.state import WebState, web_state

router = APIRouter(include_in_schema=False)
State = Annotated[WebState, Depends(web_state)]
STATES = ("RUNNING", "PAUSED", "COMPENSATING", "COMPLETED", "COMPENSATED", "FAILED")
PAGE = 25
WINDOWS = {"15m": 900, "1h": 3600, "6h": 21600, "24h": 86400}

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters["q"] = lambda value: quote(str(value), safe="")
_env.filters["clock"] = lambda value: str(value)[11:23] if value else ""
_env.filters["pretty"] = lambda value: json.dumps(value, indent=2, ensure_ascii=False)
templates = Jinja2Templates(env=_env)


def render(request: Request, state: WebState, name: str, **context: Any) -> HTMLResponse:
    base = {
        "read_only": state.read_only,
        "token_configured": state.config.admin_token is not None,
        "sagas_known": sorted(state.definitions),
    }
    response: HTMLResponse = templates.TemplateResponse(request, name, {**base, **context})
    return response


@router.get("/favicon.ico")
async def favicon() -> Response:
    return Response(status_code=204)


@router.get("/", response_class=HTMLResponse)
async def overview(request: Request, state: State, window: str = "1h") -> HTMLResponse:
    seconds = WINDOWS.get(window, 3600)
    counts = await state.store.counts()
    data = await series(state.store, timedelta(seconds=seconds), 24)
    charts: dict[str, list[Markup]] = {}
    for name, s in data["sagas"].items():
        charts[name] = [
            Markup(line_chart("throughput (started / min)", {"started": s["throughput"]})),
            Markup(
                line_chart(
                    "completion and error rate",
                    {"completion": s["completion_rate"], "errors": s["error_rate"]},
                )
            ),
            Markup(
                line_chart(
                    "cycle time (s)", {"p50": s["p50"], "p95": s["p95"], "p99": s["p99"]}, " s"
                )
            ),
        ]
    names = sorted(set(counts) | set(state.definitions))
    return render(
        request,
        state,
        "overview.html",
        names=names,
        counts=counts,
        states=STATES,
        charts=charts,
        window=window,
        windows=list(WINDOWS),
        stuck=await state.store.stuck(None, 10),
    )


@router.get("/instances", response_class=HTMLResponse)
async def instances(
    request: Request,
    state: State,
    saga: Annotated[str, Query(max_length=200)] = "",
    state_: Annotated[list[str], Query(alias="state", max_length=20)] = [],  # noqa: B006  # FastAPI idiom
    since: Annotated[str, Query(max_length=10)] = "",
    q: Annotated[str, Query(max_length=2000)] = "",
    page: Annotated[int, Query(ge=0, le=MAX_OFFSET // PAGE)] = 0,
) -> HTMLResponse:
    since_at = datetime.now(UTC) - timedelta(seconds=WINDOWS[since]) if since in WINDOWS else None
    query = InstanceQuery(saga or None, tuple(state_), since_at, q or None, PAGE, page * PAGE)
    rows, total = await state.store.select(query)
    params = [("saga", saga), *(("state", s) for s in state_), ("since", since), ("q", q)]

    def page_link(n: int) -> str:
        return "/instances?" + urlencode([*params, ("page", str(n))])

    return render(
        request,
        state,
        "instances.html",
        rows=rows,
        total=total,
        saga=saga,
        selected=state_,
        since=since,
        q=q,
        states=STATES,
        windows=list(WINDOWS),
        names=sorted(set(state.definitions) | set(await state.store.counts())),
        prev=page_link(page - 1) if page > 0 else None,
        next=page_link(page + 1) if (page + 1) * PAGE < total else None,
        first=page * PAGE + 1 if rows else 0,
        last=page * PAGE + len(rows),
    )


def allowed_actions(view: dict[str, Any]) -> list[str]:
    """The actions that can apply in the instance's state (the engine decides for sure)."""
    state = view["state"]
    if state == "RUNNING":
        return ["pause", "abort", "retry-now", "skip"]
    if state == "COMPENSATING":
        return ["pause", "retry-now", "skip"]
    if state == "PAUSED":
        return ["unpause"]
    if state == "FAILED":
        failed_back = any(s["status"] == "COMPENSATION_FAILED" for s in view["steps"])
        return ["resume" if failed_back else "retry", "skip"]
    return []


@router.get("/instances/{saga}/{saga_id:path}", response_class=HTMLResponse)
async def instance(request: Request, state: State, saga: str, saga_id: str) -> HTMLResponse:
    body = await state.instance(saga, saga_id)
    view = instance_view(body)
    definition = state.definition(saga, body.get("version"))
    drawing = Markup(diagram_svg(diagram(definition, body))) if definition else None
    trace = view["trace_id"]
    jaeger = state.config.jaeger_url
    return render(
        request,
        state,
        "instance.html",
        view=view,
        gantt=Markup(gantt_svg(view)),
        drawing=drawing,
        trace_link=f"{jaeger.rstrip('/')}/trace/{trace}" if jaeger and trace else None,
        actions=allowed_actions(view),
        open_steps=[s["name"] for s in view["steps"] if s["status"] not in ("PENDING",)],
    )


@router.get("/definitions/{saga}", response_class=HTMLResponse)
async def definition(request: Request, state: State, saga: str) -> HTMLResponse:
    found = state.definitions.get(saga)
    model = diagram(found) if found else None
    return render(
        request,
        state,
        "definition.html",
        saga=saga,
        found=found is not None,
        version=found.version if found else None,
        drawing=Markup(diagram_svg(model)) if model else None,
        mermaid=mermaid(model) if model else "",
    )


@router.get("/dlq", response_class=HTMLResponse)
async def dead_letters(request: Request, state: State, topic: str = "") -> HTMLResponse:
    letters: list[dict[str, Any]] = []
    topics: list[str] = []
    if state.config.bootstrap_servers:
        async with await _letters(state) as dlq:
            topics = await dlq.topics()
            letters = [d.summary() for d in await dlq.read(topic or None, 100)]
    return render(request, state, "dlq.html", letters=letters, topics=topics, topic=topic)


@router.get("/dlq/{letter_id}", response_class=HTMLResponse)
async def dead_letter(request: Request, state: State, letter_id: str) -> HTMLResponse:
    async with await _letters(state) as dlq:
        letter = (await dlq.get(letter_id)).detail()
    return render(request, state, "letter.html", letter=letter)
