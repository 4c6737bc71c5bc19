"""The assets service: a pool of laptops per model, handed out to employees and delivered.

Rules:
- ``ProvisionLaptop`` assigns the first available laptop of the model (by asset tag)
  to the employee, or replies ``LaptopUnavailable`` when the model's pool is empty (or
  the model unknown). An employee who already holds a laptop gets it again.
- Then, on its own, the service delivers the laptop: it publishes
  ``assets.LaptopDelivered`` to ``assets.events`` (keyed by employee id, ``ce_id``
  ``laptop:<assignment id>:delivered``), which the onboarding saga waits for. The
  delivery is written with the assignment, in the command's transaction (an outbox), and
  published after the reply; deliveries not yet acknowledged by Kafka are published
  again when the service starts.
- ``ReclaimLaptop`` returns the laptop to the pool (a delivery not yet published is
  called off). Reclaiming a returned or unknown laptop changes nothing and still
  replies ``LaptopReclaimed``.

Invariants (`invariants`): per model, available + assigned = seeded (laptops are
conserved); each assigned laptop has exactly one active assignment and an employee
holds at most one laptop.

Run it with ``python -m services.assets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant
from services.messages.assets import (
    LaptopDelivered,
    LaptopProvisioned,
    LaptopReclaimed,
    LaptopUnavailable,
    ProvisionLaptop,
    ReclaimLaptop,
)

if TYPE_CHECKING:
    from sagas.participant import ParticipantService

DOMAIN = "assets"

SCHEMA = """
CREATE TABLE IF NOT EXISTS models (model TEXT PRIMARY KEY, seeded INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS laptops (
    asset_tag   TEXT PRIMARY KEY,
    model       TEXT NOT NULL REFERENCES models,
    status      TEXT NOT NULL CHECK (status IN ('AVAILABLE', 'ASSIGNED')),
    employee_id TEXT
);
CREATE TABLE IF NOT EXISTS assignments (
    assignment_id TEXT PRIMARY KEY,
    employee_id   TEXT NOT NULL,
    asset_tag     TEXT NOT NULL REFERENCES laptops,
    status        TEXT NOT NULL CHECK (status IN ('ASSIGNED', 'RECLAIMED')),
    delivery      TEXT NOT NULL CHECK (delivery IN ('PENDING', 'PUBLISHED', 'CALLED_OFF')),
    assigned_at   TEXT NOT NULL,
    updated_at    TEXT NOT NULL
);
"""

DEFAULT_SEED: dict[str, Any] = {
    "pool": {"MBP-16": 20, "MBA-13": 30, "X1-CARBON": 10, "MBP-14-M4": 0}
}
"""The deterministic default: laptops per model (``MBP-14-M4`` is on back order)."""


def asset_tag(model: str, n: int) -> str:
    """The tag of the ``n``-th seeded laptop of ``model``."""
    return f"{model}-{n:04d}"


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"pool": {model: laptops}}``."""
    for model, count in data["pool"].items():
        await db.execute("INSERT INTO models VALUES (?, ?)", (model, int(count)))
        await db.executemany(
            "INSERT INTO laptops VALUES (?, ?, 'AVAILABLE', NULL)",
            [(asset_tag(model, n), model) for n in range(1, int(count) + 1)],
        )


async def provision(command: ProvisionLaptop, ctx: Context) -> Record:
    """Assign a laptop of the model and queue its delivery, or reply that none is left."""
    db = ctx.db
    held = await _one(
        db,
        "SELECT a.asset_tag, l.model FROM assignments AS a JOIN laptops AS l USING (asset_tag) "
        "WHERE a.employee_id = ? AND a.status = 'ASSIGNED'",
        command.employee_id,
    )
    if held is not None:
        return LaptopProvisioned(employee_id=command.employee_id, asset_tag=held[0], model=held[1])
    free = await _one(
        db,
        "SELECT asset_tag FROM laptops WHERE model = ? AND status = 'AVAILABLE' "
        "ORDER BY asset_tag LIMIT 1",
        command.model,
    )
    if free is None:
        return LaptopUnavailable(employee_id=command.employee_id, model=command.model)
    tag, now = str(free[0]), ctx.now.isoformat()
    await db.execute(
        "UPDATE laptops SET status = 'ASSIGNED', employee_id = ? WHERE asset_tag = ?",
        (command.employee_id, tag),
    )
    await db.execute(
        "INSERT INTO assignments VALUES (?, ?, ?, 'ASSIGNED', 'PENDING', ?, ?)",
        (ctx.new_id("asg"), command.employee_id, tag, now, now),
    )
    return LaptopProvisioned(employee_id=command.employee_id, asset_tag=tag, model=command.model)


async def reclaim(command: ReclaimLaptop, ctx: Context) -> Record:
    """Return the laptop to the pool (once; later calls and unknown laptops change nothing)."""
    db = ctx.db
    cursor = await db.execute(
        "UPDATE assignments SET status = 'RECLAIMED', updated_at = ?, "
        "delivery = CASE delivery WHEN 'PENDING' THEN 'CALLED_OFF' ELSE delivery END "
        "WHERE asset_tag = ? AND employee_id = ? AND status = 'ASSIGNED'",
        (ctx.now.isoformat(), command.asset_tag, command.employee_id),
    )
    if cursor.rowcount == 1:
        await db.execute(
            "UPDATE laptops SET status = 'AVAILABLE', employee_id = NULL WHERE asset_tag = ?",
            (command.asset_tag,),
        )
    return LaptopReclaimed(employee_id=command.employee_id, asset_tag=command.asset_tag)


async def deliver_pending(service: ParticipantService) -> None:
    """Publish ``LaptopDelivered`` for every delivery not yet acknowledged by Kafka."""
    async with service.store.db.execute(
        "SELECT assignment_id, employee_id, asset_tag FROM assignments "
        "WHERE delivery = 'PENDING' ORDER BY rowid"
    ) as cursor:
        pending = list(await cursor.fetchall())
    for assignment_id, employee_id, tag in pending:
        now: datetime = service.processor.clock()
        event = LaptopDelivered(employee_id=employee_id, asset_tag=tag, delivered_at=now)
        event_id = f"laptop:{assignment_id}:delivered"
        await service.publish(event, domain=DOMAIN, key=employee_id, event_id=event_id)
        async with service.store.transaction() as db:
            await db.execute(
                "UPDATE assignments SET delivery = 'PUBLISHED' "
                "WHERE assignment_id = ? AND delivery = 'PENDING'",
                (assignment_id,),
            )


async def _one(db: aiosqlite.Connection, sql: str, *args: object) -> Any:
    async with db.execute(sql, args) as cursor:
        return await cursor.fetchone()


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken laptop invariant (empty when every laptop is accounted for)."""
    broken: list[str] = []
    async with db.execute(
        "SELECT m.model, m.seeded, "
        "COALESCE(SUM(l.status = 'AVAILABLE'), 0), COALESCE(SUM(l.status = 'ASSIGNED'), 0) "
        "FROM models AS m LEFT JOIN laptops AS l ON l.model = m.model GROUP BY m.model"
    ) as cursor:
        async for model, seeded, available, assigned in cursor:
            if available + assigned != seeded:
                broken.append(f"{model}: available {available} + assigned {assigned} != {seeded}")
    async with db.execute(
        "SELECT l.asset_tag, l.status, l.employee_id, COUNT(a.assignment_id), "
        "MAX(a.employee_id) FROM laptops AS l LEFT JOIN assignments AS a "
        "ON a.asset_tag = l.asset_tag AND a.status = 'ASSIGNED' GROUP BY l.asset_tag"
    ) as cursor:
        async for tag, status, holder, active, assignee in cursor:
            if (status == "ASSIGNED") != (active == 1) or active > 1:
                broken.append(f"{tag}: {status} with {active} active assignments")
            elif status == "ASSIGNED" and holder != assignee:
                broken.append(f"{tag}: held by {holder}, assigned to {assignee}")
    async with db.execute(
        "SELECT employee_id FROM assignments WHERE status = 'ASSIGNED' "
        "GROUP BY employee_id HAVING COUNT(*) > 1"
    ) as cursor:
        async for (employee_id,) in cursor:
            broken.append(f"{employee_id}: holds more than one laptop")
    return broken


async def pool_of(db: aiosqlite.Connection, model: str) -> tuple[int, int]:
    """``(available, assigned)`` laptops of one model."""
    row = await _one(
        db,
        "SELECT COALESCE(SUM(status = 'AVAILABLE'), 0), COALESCE(SUM(status = 'ASSIGNED'), 0) "
        "FROM laptops WHERE model = ?",
        model,
    )
    return (int(row[0]), int(row[1]))


def participant() -> Participant:
    """The assets service definition."""
    return Participant(
        name="assets",
        handlers=(
            Handler(ProvisionLaptop, provision, (LaptopProvisioned, LaptopUnavailable)),
            Handler(ReclaimLaptop, reclaim, (LaptopReclaimed,)),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6067,
        on_start=deliver_pending,
        after_command=deliver_pending,
        publishes=(f"{DOMAIN}.events",),
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("assets"), app)
