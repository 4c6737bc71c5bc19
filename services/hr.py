"""The hr service: hires are recorded here; it follows how their onboarding ends.

- `hire` (and ``POST /hires`` on the web endpoint) stores a hire as ``HIRED`` and
  publishes ``EmployeeHired`` to ``hr.events`` (which starts the onboarding saga). The
  hire row and the encoded event are written in one SQLite transaction (an outbox): an
  event not yet acknowledged by Kafka is published again when the service starts. Its
  ``ce_id`` is ``employee:<employee_id>:hired``, so a second publication is a duplicate
  downstream.
- It follows ``EmployeeOnboarded`` / ``OnboardingCancelled`` on ``hr.events`` and moves
  a ``HIRED`` hire to ``ONBOARDED`` (with user name, mail address and laptop) /
  ``CANCELLED`` (with the reason).

Invariants (`invariants`): an onboarded hire has a user name, mail address and laptop;
every hire's event was published.

Run it with ``python -m services.hr``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope
from sagas.participant import (
    Context,
    JSONObject,
    Outbound,
    Outbox,
    Participant,
    Store,
    Subscription,
)
from services.messages.hr import EmployeeHired, EmployeeOnboarded, OnboardingCancelled, Role

if TYPE_CHECKING:
    from sagas.participant import ParticipantService

EVENTS = "hr.events"

SCHEMA = """
CREATE TABLE IF NOT EXISTS hires (
    employee_id   TEXT PRIMARY KEY,
    full_name     TEXT NOT NULL,
    role          TEXT NOT NULL,
    start_date    TEXT NOT NULL,
    laptop_model  TEXT,
    status        TEXT NOT NULL CHECK (status IN ('HIRED', 'ONBOARDED', 'CANCELLED')),
    hired_at      TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    username      TEXT,
    email         TEXT,
    asset_tag     TEXT,
    reason        TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    employee_id   TEXT PRIMARY KEY REFERENCES hires,
    event_headers TEXT NOT NULL,          -- the encoded EmployeeHired
    event_value   BLOB NOT NULL,
    published     INTEGER NOT NULL DEFAULT 0
);
"""

DEFAULT_SEED: dict[str, Any] = {"staff": []}
"""The deterministic default: no staff onboarded before the service started."""


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store with staff onboarded before this service existed:
    ``{"staff": [{employee_id, full_name, role, start_date, username, email, asset_tag}]}``.
    """
    for s in data["staff"]:
        await db.execute(
            "INSERT INTO hires VALUES (?, ?, ?, ?, NULL, 'ONBOARDED', '', '', ?, ?, ?, NULL)",
            (
                s["employee_id"],
                s["full_name"],
                Role(s["role"]).value,
                date.fromisoformat(s["start_date"]).isoformat(),
                s["username"],
                s["email"],
                s["asset_tag"],
            ),
        )


def _event(request: JSONObject, now: datetime) -> EmployeeHired:
    full_name = str(request["full_name"]).strip()
    if not full_name:
        raise ValueError("a hire needs a full name")
    try:
        role = Role(request["role"])
    except ValueError as exc:
        raise ValueError(f"unknown role {request['role']!r}") from exc
    model = request.get("laptop_model")
    return EmployeeHired(
        employee_id=str(request.get("employee_id") or f"e-{uuid.uuid4().hex[:12]}"),
        full_name=full_name,
        role=role,
        start_date=date.fromisoformat(str(request["start_date"])),
        hired_at=now,
        laptop_model=None if model is None else str(model),
    )


async def record_hire(
    store: Store, codec: Codec, request: JSONObject, now: datetime, *, topic: str = EVENTS
) -> tuple[EmployeeHired, Outbound]:
    """Store a new hire from ``request`` and return its event, to publish.

    ``request``: ``{"full_name", "role", "start_date" (ISO date), "laptop_model"?,
    "employee_id"?}``.

    Raises:
        ValueError: no name, an unknown role, a bad date, or a known employee id.
        RegistryError: the schema registry could not be reached (nothing was stored).
    """
    await codec.prepare()  # off the event loop, before the transaction (see Codec.prepare)
    event = _event(request, now)
    headers, value = codec.encode(
        Envelope(
            id=f"employee:{event.employee_id}:hired",
            type=event.SCHEMA,
            source="/services/hr",
            time=now,
            payload=event,
        )
    )
    async with store.transaction() as db:
        try:
            await db.execute(
                "INSERT INTO hires VALUES (?, ?, ?, ?, ?, 'HIRED', ?, ?, NULL, NULL, NULL, NULL)",
                (
                    event.employee_id,
                    event.full_name,
                    event.role.value,
                    event.start_date.isoformat(),
                    event.laptop_model,
                    now.isoformat(),
                    now.isoformat(),
                ),
            )
        except aiosqlite.IntegrityError as exc:
            raise ValueError(f"employee {event.employee_id} exists already") from exc
        await db.execute(
            "INSERT INTO outbox VALUES (?, ?, ?, 0)",
            (event.employee_id, json.dumps([[n, v.hex()] for n, v in headers]), value),
        )
    out = Outbound(topic=topic, key=event.employee_id.encode(), value=value, headers=headers)
    return event, out


async def hire(service: ParticipantService, request: JSONObject) -> EmployeeHired:
    """Record a hire and publish ``EmployeeHired`` (see `record_hire`)."""
    event, out = await record_hire(
        service.store,
        service.codec,
        request,
        service.processor.clock(),
        topic=service.topic(EVENTS),
    )
    await OUTBOX.publish(service, event.employee_id, out)
    return event


OUTBOX = Outbox(table="outbox", key="employee_id", topic=EVENTS)


async def publish_pending(service: ParticipantService) -> None:
    """Publish every stored hire event Kafka has not acknowledged yet (the outbox)."""
    await OUTBOX.publish_pending(service)


async def _post_hire(service: ParticipantService, body: JSONObject) -> JSONObject:
    event = await hire(service, body)
    return {"employee_id": event.employee_id, "status": "HIRED"}


async def onboarded(event: EmployeeOnboarded, ctx: Context) -> None:
    """A hire's onboarding completed."""
    await ctx.db.execute(
        "UPDATE hires SET status = 'ONBOARDED', username = ?, email = ?, asset_tag = ?, "
        "updated_at = ? WHERE employee_id = ? AND status = 'HIRED'",
        (event.username, event.email, event.asset_tag, ctx.now.isoformat(), event.employee_id),
    )


async def cancelled(event: OnboardingCancelled, ctx: Context) -> None:
    """A hire's onboarding was cancelled."""
    await ctx.db.execute(
        "UPDATE hires SET status = 'CANCELLED', reason = ?, updated_at = ? "
        "WHERE employee_id = ? AND status = 'HIRED'",
        (event.reason, ctx.now.isoformat(), event.employee_id),
    )


async def status_of(db: aiosqlite.Connection, employee_id: str) -> str | None:
    """The status of a hire (``None``: unknown)."""
    async with db.execute("SELECT status FROM hires WHERE employee_id = ?", (employee_id,)) as c:
        row = await c.fetchone()
    return None if row is None else str(row[0])


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken hire invariant (empty when all hold)."""
    broken: list[str] = []
    async with db.execute(
        "SELECT h.employee_id, h.status, h.username, h.email, h.asset_tag, o.published "
        "FROM hires AS h LEFT JOIN outbox AS o USING (employee_id)"
    ) as cursor:
        async for employee_id, status, username, email, tag, published in cursor:
            if status == "ONBOARDED" and not (username and email and tag):
                broken.append(f"{employee_id}: onboarded without account, mailbox or laptop")
            if published == 0:
                broken.append(f"{employee_id}: EmployeeHired not published yet")
    return broken


def participant() -> Participant:
    """The hr service definition."""
    return Participant(
        name="hr",
        subscriptions=(
            Subscription(
                EVENTS,
                EmployeeOnboarded,
                onboarded,
                reads=("employee_id", "username", "email", "asset_tag"),
            ),
            Subscription(EVENTS, OnboardingCancelled, cancelled, reads=("employee_id", "reason")),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6065,
        routes={"/hires": _post_hire},
        on_start=publish_pending,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("hr"), app)
