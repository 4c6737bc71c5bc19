"""A participant's faults, as a wrapper: slow commands, failing commands, a crash.

`FaultyProcessor` is the participant `Processor` plus three faults, injected at the
processor's two override points; `ServiceFaults` reads them from the environment
(``SAGAS_CHAOS_SERVICE_*``, all off by default). The chaos entry point
``python -m sagas.chaos.service NAME`` serves a participant with it; a service started
by ``sagas serve`` has none of it.

- ``latency``: each command (decoded, with a handler) waits this long before it is
  answered, inside its batch's transaction, like a slow handler.
- ``failure_rate``: the probability, drawn from ``random.Random(seed)`` before the stored
  reply is looked up, that a command is answered with a retryable
  ``sagas.CommandFailed`` (an `InjectedFault`): nothing applied, nothing stored, so the
  engine's retry is applied normally.
- ``crash_after``: once ``n`` commands were applied, the process exits at once with
  status `CRASH_STATUS`, right after the ``COMMIT`` of the transaction holding the
  n-th and before its replies are sent: the worst moment, which the stored replies
  cover (Kafka delivers the batch again and each command gets its stored reply).

`InjectedFault` is a `sagas.participant.Unavailable` (``ServiceError`` ->
``Unavailable`` -> ``InjectedFault``), so the framework's own rules make it retryable.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiosqlite
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope
from sagas.participant.definition import Handler, Participant
from sagas.participant.errors import Unavailable
from sagas.participant.processor import Processor, ProcessorFactory
from sagas.participant.store import Outbound, Store
from sagas.settings import Duration
from sagas.telemetry.participant import ParticipantTelemetry

log = logging.getLogger(__name__)

CRASH_STATUS = 70
"""The exit status of the crash fault (``EX_SOFTWARE``): no clean stop returns it."""


class InjectedFault(Unavailable):
    """A failure injected by ``SAGAS_CHAOS_SERVICE_FAILURE_RATE`` (retryable)."""


class ServiceFaults(BaseSettings):
    """The faults ``python -m sagas.chaos.service`` injects; all off by default."""

    model_config = SettingsConfigDict(env_prefix="SAGAS_CHAOS_SERVICE_", frozen=True)

    failure_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Probability that a command fails with a retryable CommandFailed "
        "(nothing applied).",
    )
    latency: Duration = Field(
        timedelta(0), ge=timedelta(0), description="Delay added before each command."
    )
    crash_after: int | None = Field(
        None,
        ge=1,
        description="Exit (status 70) once this many commands were applied, after the "
        "SQLite commit of the batch holding the last of them, before its replies are sent.",
    )
    seed: int = Field(0, description="Seed of the failure draws (a run can be replayed).")


def crash_now(applied: int) -> None:
    """Exit the process at once with `CRASH_STATUS`, as a kill would: no clean-up, no
    offsets committed, no reply sent (the log line goes out first)."""
    log.error("fault injection: crashing after %d commands", applied)
    os._exit(CRASH_STATUS)


class FaultyProcessor(Processor):
    """A `Processor` that injects ``faults`` (see the module docstring).

    Args:
        faults: what to inject.
        crash: called with the count once ``faults.crash_after`` commands were applied
            (default `crash_now`; a test passes a recorder).
        topic_prefix, clock, telemetry: as for `Processor`.
    """

    def __init__(
        self,
        participant: Participant,
        store: Store,
        codec: Codec,
        *,
        faults: ServiceFaults,
        crash: Callable[[int], None] = crash_now,
        topic_prefix: str = "",
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        telemetry: ParticipantTelemetry | None = None,
    ) -> None:
        super().__init__(
            participant, store, codec, topic_prefix=topic_prefix, clock=clock, telemetry=telemetry
        )
        self.faults = faults
        self.crash = crash
        self._random = random.Random(faults.seed)
        log.warning("%s: injecting faults: %s", participant.name, faults)

    async def apply_command(
        self, db: aiosqlite.Connection, envelope: Envelope, handler: Handler[Any], now: datetime
    ) -> tuple[list[Outbound], bool]:
        """Wait ``latency``, maybe fail (nothing applied), else answer as `Processor`."""
        if self.faults.latency > timedelta(0):
            await asyncio.sleep(self.faults.latency.total_seconds())
        if self.faults.failure_rate and self._random.random() < self.faults.failure_rate:
            return [self.replies.failure(envelope, InjectedFault("injected fault"))], False
        return await super().apply_command(db, envelope, handler, now)

    def committed(self, applied: int) -> None:
        """Count, then crash once ``crash_after`` commands were applied: the transaction
        is committed, its replies are not sent yet."""
        super().committed(applied)
        due = self.faults.crash_after
        if applied and due is not None and self.applied >= due:
            self.crash(self.applied)


def faulty(faults: ServiceFaults, crash: Callable[[int], None] = crash_now) -> ProcessorFactory:
    """The `ParticipantService` processor factory that injects ``faults``."""

    def build(
        participant: Participant,
        store: Store,
        codec: Codec,
        *,
        topic_prefix: str,
        telemetry: ParticipantTelemetry | None,
    ) -> Processor:
        return FaultyProcessor(
            participant,
            store,
            codec,
            faults=faults,
            crash=crash,
            topic_prefix=topic_prefix,
            telemetry=telemetry,
        )

    return build
