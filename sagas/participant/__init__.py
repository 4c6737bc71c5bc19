"""The framework every participant service is written with.

A service is a `Participant` (data: handlers per command type, followed events, the
SQL of its store, seed data, invariants), run by `ParticipantService` on faust-streaming
with read_committed consumption, ``ce_id`` deduplication in the same SQLite transaction
as the side effects, stored replies, a dead-letter topic and a health endpoint. See
docs/services.md.
"""

from __future__ import annotations

from sagas.participant.definition import Context, Handler, Participant, Subscription
from sagas.participant.errors import (
    InjectedFault,
    Rejected,
    ServiceError,
    Unavailable,
    is_retryable,
)
from sagas.participant.processor import Faults, Incoming, Processor
from sagas.participant.service import ParticipantService
from sagas.participant.store import Outbound, Store

__all__ = [
    "Context",
    "Faults",
    "Handler",
    "Incoming",
    "InjectedFault",
    "Outbound",
    "Participant",
    "ParticipantService",
    "Processor",
    "Rejected",
    "ServiceError",
    "Store",
    "Subscription",
    "Unavailable",
    "is_retryable",
]
