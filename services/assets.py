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
- ``ReclaimLaptop`` returns to the pool the laptops assigned by the commands it
  compensates (its ``compensates`` header: a laptop the employee held before is kept);
  without the header, the laptop named. A delivery not yet published is called off.
  Reclaiming a returned or unknown laptop changes nothing and still replies
  ``LaptopReclaimed``.
- An assignment is a hold for ``HOLD_TTL`` (8 days, past the onboarding saga's 7-day
  deadline): ``EmployeeOnboarded`` (followed on
  ``hr.events``) makes it permanent; a hold still unconfirmed when its time is up is
  reclaimed by the sweep (`expire_holds`, a timer every ``SWEEP``), so no laptop stays
  assigned for a saga that is gone.

Invariants (`invariants`): per model, available + assigned = seeded (laptops are
conserved); each assigned laptop has exactly one active assignment and an employee
holds at most one laptop; no hold is active past its expiry (plus two sweeps), an
expired hold left its laptop in the pool, and nobody was onboarded after the hold of
their laptop expired.

Run it with ``python -m services.assets``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Every, Handler, Participant, Subscription
from services.messages.assets import (
    LaptopDelivered,
    LaptopProvisioned,
    LaptopReclaimed,
    LaptopUnavailable,
    ProvisionLaptop,
    ReclaimLaptop,
)
from services.messages.hr import EmployeeOnboarded

if TYPE_CHECKING:
    from sagas.participant import ParticipantService

DOMAIN = "assets"

HOLD_TTL = timedelta(days=8)
"""How long an assignment holds its laptop until the employee is onboarded."""
SWEEP = timedelta(minutes=1)
"""How often expired holds are reclaimed."""

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
CREATE TABLE IF NOT EXISTS holds (
    assignment_id TEXT PRIMARY KEY REFERENCES assignments,
    expires_at    TEXT,                -- NULL once the employee was onboarded
    expired_at    TEXT,                -- when the sweep reclaimed it
    confirmed_at  TEXT                 -- when EmployeeOnboarded came
);
CREATE INDEX IF NOT EXISTS holds_by_expiry ON holds (expires_at);
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
    assignment_id = ctx.new_id("asg")
    await db.execute(
        "UPDATE laptops SET status = 'ASSIGNED', employee_id = ? WHERE asset_tag = ?",
        (command.employee_id, tag),
    )
    await db.execute(
        "INSERT INTO assignments VALUES (?, ?, ?, 'ASSIGNED', 'PENDING', ?, ?)",
        (assignment_id, command.employee_id, tag, now, now),
    )
    expires = ctx.now + HOLD_TTL
    await db.execute(
        "INSERT INTO holds VALUES (?, ?, NULL, NULL)", (assignment_id, expires.isoformat())
    )
    return LaptopProvisioned(employee_id=command.employee_id, asset_tag=tag, model=command.model)


async def reclaim(command: ReclaimLaptop, ctx: Context) -> Record:
    """Return what the compensated commands assigned to the pool (once; later calls and
    unknown laptops change nothing)."""
    db = ctx.db
    if ctx.compensated:  # exactly the assignments those commands made
        targets = list(ctx.compensated_ids("asg"))
    else:
        row = await _one(
            db,
            "SELECT assignment_id FROM assignments WHERE asset_tag = ? AND employee_id = ? "
            "AND status = 'ASSIGNED'",
            command.asset_tag,
            command.employee_id,
        )
        targets = [] if row is None else [str(row[0])]
    reclaimed = [t for t in targets if await _reclaim(db, t, ctx.now, command.employee_id)]
    shown = command.asset_tag or (reclaimed[0] if reclaimed else "")
    return LaptopReclaimed(employee_id=command.employee_id, asset_tag=shown)


async def _reclaim(
    db: aiosqlite.Connection, assignment_id: str, now: datetime, employee_id: str | None = None
) -> str | None:
    """End an active assignment and put its laptop back; its tag, None when not active."""
    row = await _one(
        db,
        "SELECT asset_tag, employee_id FROM assignments WHERE assignment_id = ? "
        "AND status = 'ASSIGNED'",
        assignment_id,
    )
    if row is None or (employee_id is not None and row[1] != employee_id):
        return None
    await db.execute(
        "UPDATE assignments SET status = 'RECLAIMED', updated_at = ?, "
        "delivery = CASE delivery WHEN 'PENDING' THEN 'CALLED_OFF' ELSE delivery END "
        "WHERE assignment_id = ?",
        (now.isoformat(), assignment_id),
    )
    await db.execute(
        "UPDATE laptops SET status = 'AVAILABLE', employee_id = NULL WHERE asset_tag = ?",
        (row[0],),
    )
    return str(row[0])


async def onboarded(event: EmployeeOnboarded, ctx: Context) -> None:
    """The employee keeps the laptop: its hold no longer expires."""
    await ctx.db.execute(
        "UPDATE holds SET expires_at = NULL, confirmed_at = ? WHERE assignment_id IN "
        "(SELECT assignment_id FROM assignments WHERE employee_id = ?)",
        (ctx.now.isoformat(), event.employee_id),
    )


async def expire_holds(db: aiosqlite.Connection, now: datetime) -> None:
    """Reclaim every laptop whose hold expired (the saga is gone)."""
    async with db.execute(
        "SELECT h.assignment_id FROM holds AS h JOIN assignments AS a USING (assignment_id) "
        "WHERE a.status = 'ASSIGNED' AND h.expires_at IS NOT NULL AND h.expires_at <= ?",
        (now.isoformat(),),
    ) as cursor:
        expired = [str(row[0]) async for row in cursor]
    for assignment_id in expired:
        await _reclaim(db, assignment_id, now)
        await db.execute(
            "UPDATE holds SET expired_at = ? WHERE assignment_id = ?",
            (now.isoformat(), assignment_id),
        )


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
    return broken + await hold_problems(db, datetime.now(UTC))


async def hold_problems(db: aiosqlite.Connection, now: datetime) -> list[str]:
    """Holds that outlived their time, or expired yet keep their laptop or were kept."""
    broken: list[str] = []
    overdue = (now - 2 * SWEEP).isoformat()
    async with db.execute(
        "SELECT h.assignment_id, h.expires_at, h.expired_at, h.confirmed_at, a.status "
        "FROM holds AS h JOIN assignments AS a USING (assignment_id) "
        "WHERE (a.status = 'ASSIGNED' AND h.expires_at < ?) OR h.expired_at IS NOT NULL",
        (overdue,),
    ) as cursor:
        async for assignment_id, expires_at, expired_at, confirmed_at, status in cursor:
            if expired_at is None:
                broken.append(f"{assignment_id}: held past its expiry {expires_at}")
            elif status == "ASSIGNED":
                broken.append(f"{assignment_id}: expired at {expired_at} but still assigned")
            if expired_at is not None and confirmed_at is not None:
                broken.append(f"{assignment_id}: onboarded after its hold expired")
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
        subscriptions=(Subscription("hr.events", EmployeeOnboarded, onboarded, ("employee_id",)),),
        timers=(Every(SWEEP, expire_holds),),
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("assets"), app)
