"""Dead letters: every poison record is in a dead-letter topic with its reason, and
nothing else is.

Reads every dead-letter topic of the run (``<prefix>sagas.<saga>.dlq`` of the engines,
``<prefix>sagas.router.dlq`` of the router, ``<prefix><service>.dlq`` of the
participants) to its end, ``read_committed``, through the broker's direct listener.
The poison fault recorded the key of every record it sent in ``ctx.poison``; a
dead-lettered record keeps its original key, and the consumer adds ``dlq_reason``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sagas.chaos.faults.base import ChaosContext, Check
from sagas.chaos.faults.messages import list_topics, read_topics
from sagas.contracts import deadletters, topics


def dead_letter_topics(ctx: ChaosContext, existing: set[str]) -> list[str]:
    """The run's dead-letter topics (every topic of its prefix ending in ``.dlq``)."""
    return sorted(t for t in existing if t.startswith(ctx.prefix) and topics.is_dead_letters(t))


async def dead_letters(ctx: ChaosContext, final_instances: Sequence[Any]) -> dict[str, list[str]]:
    """Violations: poison not dead-lettered, dead-lettered without a reason, and any
    dead letter that is not poison of ours (a valid message lost to a DLQ)."""
    names = dead_letter_topics(ctx, await list_topics(ctx.direct_servers))
    records = await read_topics(ctx.direct_servers, names, deadline_s=120.0)
    poison = {key: topic for topic, keys in ctx.poison.items() for key in keys}
    reasons: dict[str, list[str]] = {}  # poison key -> reason of each copy ('' when none)
    violations: dict[str, list[str]] = {}
    for record in records:
        key = record.key.decode(errors="replace") if record.key is not None else None
        where = f"{record.topic}@{record.partition}:{record.offset}"
        if key is None or key not in poison:
            headers = dict(record.headers or ())
            why = headers.get(deadletters.REASON, b"").decode(errors="replace")
            violations.setdefault("valid_message_in_dlq", []).append(
                f"{where}: key {key!r} ({why or 'no reason'}) is not a poison record"
            )
            continue
        reason = b""
        for name, value in record.headers or ():
            if name == deadletters.REASON:
                reason = value or b""
        reasons.setdefault(key, []).append(reason.decode(errors="replace"))
        if not reason:
            violations.setdefault("poison_without_reason", []).append(
                f"{where}: poison {key} from {poison[key]} has no dlq_reason header"
            )
    for key, topic in sorted(poison.items()):
        if key not in reasons:
            violations.setdefault("poison_not_dead_lettered", []).append(
                f"poison {key} sent to {topic} is in no dead-letter topic"
            )
    return violations


CHECKS: list[Check] = [dead_letters]
