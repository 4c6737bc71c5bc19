"""Participant services: the public API for writing and running one.

A service is a `Participant` (data: its name, one `Handler` per command type, the
events it follows as `Subscription`\\ s, the SQL of its own store, seed data,
invariants), run by `serve` (``sagas serve NAME``) or in-process by
`ParticipantService`. The framework consumes its commands with read_committed, applies
each once (``ce_id`` deduplication in the same SQLite transaction as the handler's
writes), replays the stored reply for a duplicate, dead-letters bad input and serves a
health endpoint. A compensation's ``compensates`` header tombstones the commands it
undoes that have not arrived (they are refused when they come) and shows the handler
what each did (`Context.compensated`). Periodic work (`Every`) is driven by a runner
through `Timers` / `run_timers`. `sagas.participant.testing` drives one in tests. See
docs/services.md.
"""

from __future__ import annotations

from sagas.participant.definition import (
    Compensated,
    Context,
    Handler,
    JSONObject,
    Participant,
    Subscription,
    derived_id,
)
from sagas.participant.errors import Rejected, ServiceError, Unavailable
from sagas.participant.main import serve
from sagas.participant.outbox import Outbox
from sagas.participant.service import ParticipantService
from sagas.participant.settings import ServiceSettings
from sagas.participant.store import Outbound, Store
from sagas.participant.timers import Every, Timers, run_timers

__all__ = [
    "Compensated",
    "Context",
    "Every",
    "Handler",
    "JSONObject",
    "Outbound",
    "Outbox",
    "Participant",
    "ParticipantService",
    "Rejected",
    "ServiceError",
    "ServiceSettings",
    "Store",
    "Subscription",
    "Timers",
    "Unavailable",
    "derived_id",
    "run_timers",
    "serve",
]
