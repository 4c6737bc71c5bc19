"""The cloud access service: grants of the cloud IAM roles it knows to employees.

Rules:
- ``GrantCloudAccess`` grants every role asked for, or none: an unknown role, or an
  empty request, is refused with ``CloudAccessDenied``. Roles the employee already
  holds are not granted twice.
- ``RevokeCloudAccess`` revokes only what the saga granted, never a role the employee
  held before it: the grants made by the commands it compensates (its ``compensates``
  header: each grant's id derives from its command's), else the grants of the roles
  named that this saga made (``granted_by`` remembers the command and saga of each
  grant); a revoke outside any saga (no saga id) revokes the roles named. Roles not
  held are passed over; it always replies ``CloudAccessRevoked``.

Invariants (`invariants`): every granted role is known, and nobody holds a role twice.

Run it with ``python -m services.access``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant
from services.messages.access import (
    CloudAccessDenied,
    CloudAccessGranted,
    CloudAccessRevoked,
    GrantCloudAccess,
    RevokeCloudAccess,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS cloud_roles (role TEXT PRIMARY KEY, description TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS grants (
    grant_id    TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL,
    role        TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('GRANTED', 'REVOKED')),
    granted_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS grants_by_employee ON grants (employee_id);
CREATE TABLE IF NOT EXISTS granted_by (
    grant_id   TEXT PRIMARY KEY REFERENCES grants,
    command_id TEXT NOT NULL,
    saga_id    TEXT
);
"""

DEFAULT_SEED: dict[str, Any] = {
    "roles": {
        "developer": "deploy to the development accounts",
        "log-reader": "read the logs of every account",
        "billing-viewer": "read the invoices",
        "admin": "everything, everywhere",
    }
}
"""The deterministic default: the cloud roles the service can grant."""


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"roles": {role: description}}``."""
    await db.executemany(
        "INSERT INTO cloud_roles VALUES (?, ?)", [(r, str(d)) for r, d in data["roles"].items()]
    )


async def grant(command: GrantCloudAccess, ctx: Context) -> Record:
    """Grant every role asked for, or deny the request."""
    db = ctx.db
    wanted = list(dict.fromkeys(command.roles))
    known = await _column(db, "SELECT role FROM cloud_roles")
    unknown = [r for r in wanted if r not in known]
    if not wanted or unknown:
        reason = f"unknown cloud role {', '.join(unknown)}" if unknown else "no role asked for"
        return CloudAccessDenied(employee_id=command.employee_id, reason=reason)
    held = await roles_of(db, command.employee_id)
    now = ctx.now.isoformat()
    for role in (r for r in wanted if r not in held):
        grant_id = ctx.new_id(f"grant-{role}")
        await db.execute(
            "INSERT INTO grants VALUES (?, ?, ?, 'GRANTED', ?, ?)",
            (grant_id, command.employee_id, role, now, now),
        )
        await db.execute(
            "INSERT INTO granted_by VALUES (?, ?, ?)",
            (grant_id, ctx.envelope.id, ctx.envelope.saga_id),
        )
    return CloudAccessGranted(employee_id=command.employee_id, roles=tuple(wanted))


async def revoke(command: RevokeCloudAccess, ctx: Context) -> Record:
    """Revoke the grants the saga made (those held; once), never an earlier one."""
    async with ctx.db.execute(
        "SELECT g.grant_id, g.role, b.saga_id FROM grants AS g "
        "LEFT JOIN granted_by AS b USING (grant_id) "
        "WHERE g.employee_id = ? AND g.status = 'GRANTED'",
        (command.employee_id,),
    ) as cursor:
        held = [(str(g), str(r), s) async for g, r, s in cursor]
    saga_id = ctx.envelope.saga_id
    if ctx.compensated:  # exactly the grants those commands made
        undo = [g for g, r, _ in held if g in ctx.compensated_ids(f"grant-{r}")]
    elif saga_id is not None:
        undo = [g for g, r, s in held if r in command.roles and s == saga_id]
    else:  # not a saga's: the roles named
        undo = [g for g, r, _ in held if r in command.roles]
    for grant_id in undo:
        await ctx.db.execute(
            "UPDATE grants SET status = 'REVOKED', updated_at = ? WHERE grant_id = ?",
            (ctx.now.isoformat(), grant_id),
        )
    return CloudAccessRevoked(employee_id=command.employee_id, roles=command.roles)


async def roles_of(db: aiosqlite.Connection, employee_id: str) -> list[str]:
    """The cloud roles an employee holds, sorted."""
    return sorted(
        await _column(
            db,
            "SELECT role FROM grants WHERE employee_id = ? AND status = 'GRANTED'",
            employee_id,
        )
    )


async def _column(db: aiosqlite.Connection, sql: str, *args: object) -> list[str]:
    async with db.execute(sql, args) as cursor:
        return [str(row[0]) async for row in cursor]


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken grant invariant (empty when all hold)."""
    broken: list[str] = []
    async with db.execute(
        "SELECT grant_id, role FROM grants WHERE status = 'GRANTED' "
        "AND role NOT IN (SELECT role FROM cloud_roles)"
    ) as cursor:
        async for grant_id, role in cursor:
            broken.append(f"{grant_id}: unknown role {role} granted")
    async with db.execute(
        "SELECT employee_id, role FROM grants WHERE status = 'GRANTED' "
        "GROUP BY employee_id, role HAVING COUNT(*) > 1"
    ) as cursor:
        async for employee_id, role in cursor:
            broken.append(f"{employee_id}: holds {role} more than once")
    return broken


def participant() -> Participant:
    """The cloud access service definition."""
    return Participant(
        name="access",
        handlers=(
            Handler(GrantCloudAccess, grant, (CloudAccessGranted, CloudAccessDenied)),
            Handler(RevokeCloudAccess, revoke, (CloudAccessRevoked,)),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6070,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("access"), app)
