"""Rates and cycle times over a window, per saga type and per step, and as series.

Counts come from the outcome events (what happened, when); cycle times from the stored
instances (start to end of a saga, first send to end of a step).
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sagas.ops.readmodel.store import OpsStore, Outcome, iso

ENDINGS = ("SagaCompleted", "SagaCompensated", "SagaFailed")


def parse_time(text: str | None) -> datetime | None:
    """A stored timestamp (engine ``...Z`` form or ISO 8601) as an aware datetime."""
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile ``p`` (0-100) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def _rates(counts: dict[str, int]) -> dict[str, Any]:
    ended = sum(counts.get(k, 0) for k in ENDINGS)
    errors = counts.get("SagaCompensated", 0) + counts.get("SagaFailed", 0)
    return {
        "started": counts.get("SagaStarted", 0),
        "completed": counts.get("SagaCompleted", 0),
        "compensated": counts.get("SagaCompensated", 0),
        "failed": counts.get("SagaFailed", 0),
        "completion_rate": counts.get("SagaCompleted", 0) / ended if ended else None,
        "error_rate": errors / ended if ended else None,
    }


def _spread(values: list[float]) -> dict[str, float | None]:
    return {f"p{p}": percentile(values, p) for p in (50, 95, 99)}


def _durations(rows: list[tuple[Any, ...]]) -> tuple[dict[str, list[float]], dict[str, Any]]:
    cycles: dict[str, list[float]] = defaultdict(list)
    steps: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for saga, _state, started, ended, body in rows:
        begin, end = parse_time(started), parse_time(ended)
        if begin and end:
            cycles[saga].append((end - begin).total_seconds())
        for step in json.loads(body).get("steps") or []:
            s, e = parse_time(step.get("started")), parse_time(step.get("ended"))
            if s and e:
                steps[saga][str(step.get("name"))].append((e - s).total_seconds())
    return cycles, steps


async def stats(
    store: OpsStore, window: timedelta, saga: str | None = None, now: datetime | None = None
) -> dict[str, Any]:
    """Completion and error rates and cycle-time percentiles (seconds) per saga and step."""
    since = iso((now or datetime.now(UTC)) - window)
    outcomes = await store.outcomes_since(since, saga)
    cycles, step_times = _durations(await store.ended_since(since, saga))
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    step_counts: dict[str, dict[str, dict[str, int]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(int))
    )
    for o in outcomes:
        counts[o.saga_name][o.type] += 1
        if o.type in ("StepSucceeded", "StepFailed") and o.step:
            step_counts[o.saga_name][o.step][o.type] += 1
    sagas: dict[str, Any] = {}
    for name in sorted(set(counts) | set(cycles)):
        per_step: dict[str, Any] = {}
        for step in sorted(set(step_counts[name]) | set(step_times.get(name, {}))):
            ok = step_counts[name][step]["StepSucceeded"]
            bad = step_counts[name][step]["StepFailed"]
            per_step[step] = {
                "succeeded": ok,
                "failed": bad,
                "error_rate": bad / (ok + bad) if ok + bad else None,
                "duration": _spread(step_times.get(name, {}).get(step, [])),
            }
        sagas[name] = {
            **_rates(counts[name]),
            "cycle_time": _spread(cycles[name]),
            "steps": per_step,
        }
    return {"window_seconds": window.total_seconds(), "since": since, "sagas": sagas}


async def series(
    store: OpsStore,
    window: timedelta,
    buckets: int = 24,
    saga: str | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Per saga, per time bucket: throughput, completion and error rate, cycle times."""
    end = now or datetime.now(UTC)
    start = end - window
    width = window / buckets
    outcomes = await store.outcomes_since(iso(start), saga)
    rows = await store.ended_since(iso(start), saga)
    result: dict[str, Any] = {}
    names = sorted({o.saga_name for o in outcomes} | {r[0] for r in rows})
    for name in names:
        result[name] = _series_of(
            [o for o in outcomes if o.saga_name == name],
            [r for r in rows if r[0] == name],
            start,
            width,
            buckets,
        )
    labels = [iso(start + width * (i + 1)) for i in range(buckets)]
    return {"labels": labels, "sagas": result}


def _bucket(moment: datetime | None, start: datetime, width: timedelta, buckets: int) -> int | None:
    if moment is None:
        return None
    index = int((moment - start) / width)
    return index if 0 <= index < buckets else None


def _series_of(
    outcomes: list[Outcome],
    rows: list[tuple[Any, ...]],
    start: datetime,
    width: timedelta,
    buckets: int,
) -> dict[str, list[float | None]]:
    counts: list[dict[str, int]] = [defaultdict(int) for _ in range(buckets)]
    for o in outcomes:
        i = _bucket(parse_time(o.at), start, width, buckets)
        if i is not None:
            counts[i][o.type] += 1
    cycles: list[list[float]] = [[] for _ in range(buckets)]
    for _saga, _state, started, ended, _body in rows:
        begin, finish = parse_time(started), parse_time(ended)
        i = _bucket(finish, start, width, buckets)
        if i is not None and begin and finish:
            cycles[i].append((finish - begin).total_seconds())
    rates = [_rates(c) for c in counts]
    per_minute = 60 / width.total_seconds()
    return {
        "throughput": [r["started"] * per_minute for r in rates],
        "completion_rate": [r["completion_rate"] for r in rates],
        "error_rate": [r["error_rate"] for r in rates],
        "p50": [percentile(c, 50) for c in cycles],
        "p95": [percentile(c, 95) for c in cycles],
        "p99": [percentile(c, 99) for c in cycles],
    }
