"""Timers under clock jumps: none fired early, none twice, none left behind.

Read from each saga's final history (a fired timer is an entry of input ``timer``, type
its kind, id ``<step>:<attempt>@<due>``, recorded at the engine's time ``at``):

* ``premature_timer``: a timer took effect before its due time, by the engine time
  recorded in the history.
* ``timer_fired_twice``: one timer took effect twice; or a step attempt timed out more
  often than its command (or compensation) was sent, each send arming one timeout (an
  awaited event, which sends nothing, once); or the saga deadline passed twice.
* ``overdue_timer``: a timer still pending long after its due time: it never fired.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sagas.chaos.faults.base import ChaosContext, Check
from sagas.machine import SagaInstance
from sagas.machine.instance import HistoryEntry, TimerKind

OVERDUE_AFTER = timedelta(seconds=60)
"""A pending timer this far past due (by the wall clock at check time) never fired."""

_SENT_ID = {
    TimerKind.TIMEOUT.value: "{saga}:{step}:{attempt}",
    TimerKind.COMPENSATION_TIMEOUT.value: "{saga}:{step}:compensate:{attempt}",
}
"""For a timeout kind, the id of the message whose every send arms one such timeout."""


def _fired(entry: HistoryEntry) -> bool:
    """Whether a history entry is a timer that took effect (not ignored as stale)."""
    return entry.input == "timer" and not entry.note.startswith("ignored")


def _parse(timer_id: str) -> tuple[str, int, datetime] | None:
    """(step, attempt, due) of a timer input id; None when it is not one."""
    head, at, due = timer_id.rpartition("@")
    step, colon, attempt = head.rpartition(":")
    if not at or not colon:
        return None
    try:
        return step, int(attempt), datetime.fromisoformat(due)
    except ValueError:
        return None


def instance_violations(
    instance: SagaInstance[Any], now: datetime, overdue_after: timedelta = OVERDUE_AFTER
) -> dict[str, list[str]]:
    """The timer violations of one saga's final state (see the module docstring)."""
    found: dict[str, list[str]] = {}
    saga = instance.saga_id
    fired = [e for e in instance.history if _fired(e) and e.id is not None]
    by_id = Counter((e.type, e.id) for e in fired)
    for (kind, timer_id), n in sorted(by_id.items()):
        if n > 1:
            found.setdefault("timer_fired_twice", []).append(
                f"{saga}: {kind} {timer_id} took effect {n} times"
            )
    sends = Counter(sent for e in instance.history for sent in e.sent)
    per_attempt: Counter[tuple[str, str, int]] = Counter()
    for entry in fired:
        parsed = _parse(entry.id or "")
        if parsed is None:
            found.setdefault("premature_timer", []).append(
                f"{saga}: timer entry {entry.seq} has no due time in its id {entry.id!r}"
            )
            continue
        step, attempt, due = parsed
        if entry.at < due:
            found.setdefault("premature_timer", []).append(
                f"{saga}: {entry.type} {entry.id} fired at {entry.at.isoformat()}, "
                f"{(due - entry.at).total_seconds():.3f}s before it was due"
            )
        per_attempt[(entry.type, step, attempt)] += 1
    for (kind, step, attempt), n in sorted(per_attempt.items()):
        template = _SENT_ID.get(kind)
        if template is not None:
            sent = sends[template.format(saga=saga, step=step, attempt=attempt)]
            # An awaited event (no command) arms one timeout when its step is reached.
            if n > max(sent, 1):
                found.setdefault("timer_fired_twice", []).append(
                    f"{saga}: {kind} of {step} attempt {attempt} fired {n} times for {sent} send(s)"
                )
        elif kind == TimerKind.DEADLINE.value and n > 1:
            found.setdefault("timer_fired_twice", []).append(
                f"{saga}: the deadline passed {n} times"
            )
    for timer in instance.scheduled_timers:
        if now - timer.due > overdue_after:
            found.setdefault("overdue_timer", []).append(
                f"{saga}: {timer.kind.value} {timer.step or '-'}:{timer.attempt} due "
                f"{timer.due.isoformat()} is still pending ({instance.state.value})"
            )
    return found


async def check_timers(
    ctx: ChaosContext, instances: Sequence[SagaInstance[Any]]
) -> dict[str, list[str]]:
    """Timer violations of every saga's final state."""
    now = datetime.now(UTC)
    found: dict[str, list[str]] = {}
    for instance in instances:
        for kind, messages in instance_violations(instance, now).items():
            found.setdefault(kind, []).extend(messages)
    return found


CHECKS: list[Check] = [check_timers]
