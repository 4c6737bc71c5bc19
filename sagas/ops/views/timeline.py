"""What `sagas show` and the instance page display, built from the stored instance.

Both read `instance_view(body)`, so the CLI and the page agree with the stored history
by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sagas.ops.readmodel.describe import trace_id, waiting_for
from sagas.ops.readmodel.stats import parse_time


@dataclass(frozen=True)
class StepLine:
    """One step of the timeline (its compensation included)."""

    name: str
    status: str
    attempts: int
    started: str | None
    ended: str | None
    duration: float | None
    """Seconds from the first send (or wait) to the end of the step."""
    error: str | None
    compensation_attempts: int
    compensation_started: str | None
    compensation_ended: str | None


def _seconds(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return (b - a).total_seconds() if a and b else None


def _compensation_times(body: dict[str, Any], step: str) -> tuple[str | None, str | None]:
    """When the step's compensation was first sent, and when it was done or failed for good."""
    prefix = f"{body.get('saga_id')}:{step}:compensate:"
    started = ended = None
    for entry in body.get("history") or []:
        sent = entry.get("sent") or []
        if started is None and any(str(s).startswith(prefix) for s in sent):
            started = entry.get("at")
        note = str(entry.get("note") or "")
        if started is not None and (
            f"{step} compensated" in note or f"compensation of {step} failed:" in note
        ):
            ended = entry.get("at")
    return started, ended


def steps_of(body: dict[str, Any]) -> list[StepLine]:
    """Every step of the instance, in definition order."""
    lines = []
    for step in body.get("steps") or []:
        name = str(step.get("name"))
        comp_start, comp_end = _compensation_times(body, name)
        lines.append(
            StepLine(
                name=name,
                status=str(step.get("status")),
                attempts=int(step.get("attempt") or 0),
                started=step.get("started"),
                ended=step.get("ended"),
                duration=_seconds(step.get("started"), step.get("ended")),
                error=step.get("error"),
                compensation_attempts=int(step.get("comp_attempt") or 0),
                compensation_started=comp_start,
                compensation_ended=comp_end,
            )
        )
    return lines


def instance_view(body: dict[str, Any]) -> dict[str, Any]:
    """The instance as operations show it: summary, timeline, data, history, trace id."""
    return {
        "saga": body.get("saga"),
        "saga_id": body.get("saga_id"),
        "version": body.get("version"),
        "state": body.get("state"),
        "paused_state": body.get("paused_state"),
        "reason": body.get("reason"),
        "failed_step": body.get("failed_step"),
        "created": body.get("created"),
        "updated": body.get("updated"),
        "ended": body.get("ended"),
        "duration": _seconds(body.get("created"), body.get("ended") or body.get("updated")),
        "waiting_for": waiting_for(body),
        "trace_id": trace_id(body.get("traceparent")),
        "traceparent": body.get("traceparent"),
        "steps": [asdict(line) for line in steps_of(body)],
        "data": body.get("data"),
        "timers": body.get("timers") or [],
        "history": body.get("history") or [],
    }
