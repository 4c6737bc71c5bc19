"""What the read model derives from an instance body when it stores it."""

from __future__ import annotations

import json
from typing import Any

_WAITING = {
    "RUNNING": "reply to {name} (attempt {attempt})",
    "RETRYING": "backoff before retrying {name} (after attempt {attempt})",
    "COMPENSATING": "reply to the compensation of {name}",
    "COMPENSATION_RETRYING": "backoff before retrying the compensation of {name}",
}


def waiting_for(body: dict[str, Any]) -> str:
    """What an instance waits for, for people: a reply, a backoff, or an operator."""
    state = body.get("state")
    if state in ("COMPLETED", "COMPENSATED"):
        return ""
    if state == "FAILED":
        return f"an operator: {body.get('reason') or 'failed'}"
    if state == "PAUSED":
        return "an operator to unpause it"
    parts = []
    for step in body.get("steps") or []:
        template = _WAITING.get(str(step.get("status")))
        if template is not None:
            comp = "compensation" in template
            attempt = step.get("comp_attempt") if comp else step.get("attempt")
            parts.append(template.format(name=step.get("name"), attempt=attempt))
    return "; ".join(parts) or "its next input"


def search_text(body: dict[str, Any]) -> str:
    """The text `sagas list --search` looks in: the saga id and the saga data, lowercased."""
    data = json.dumps(body.get("data"), sort_keys=True, ensure_ascii=False)
    return f"{body.get('saga_id', '')}\n{data}".lower()


def trace_id(traceparent: str | None) -> str | None:
    """The trace id of a W3C ``traceparent`` (``00-<trace id>-<span id>-<flags>``)."""
    if not traceparent:
        return None
    parts = traceparent.split("-")
    return parts[1] if len(parts) == 4 and len(parts[1]) == 32 else None
