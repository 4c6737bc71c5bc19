"""The mail service: mailboxes in one mail domain.

Rules:
- ``CreateMailbox`` creates ``<username>@<domain>``. A reserved local part
  (``postmaster``...), a malformed user name, or an address an active mailbox of another
  employee has is refused with ``MailboxRejected``. An employee who already holds an
  active mailbox gets it again.
- ``DeleteMailbox`` deletes the mailboxes created by the commands it compensates (its
  ``compensates`` header); without the header, the employee's active mailbox of that
  address. Deleting a deleted or unknown mailbox changes nothing and still replies
  ``MailboxDeleted``.

Invariants (`invariants`): an address belongs to at most one active mailbox, an
employee holds at most one, and every address is in the service's domain.

Run it with ``python -m services.mail``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant
from services.messages.mail import (
    CreateMailbox,
    DeleteMailbox,
    MailboxCreated,
    MailboxDeleted,
    MailboxRejected,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS reserved (local_part TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS mailboxes (
    mailbox_id  TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL,
    address     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DELETED')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS mailboxes_by_employee ON mailboxes (employee_id);
"""

DEFAULT_SEED: dict[str, Any] = {
    "domain": "example.com",
    "reserved": ["postmaster", "abuse", "admin", "hostmaster", "info", "root"],
}
"""The deterministic default: the mail domain and the reserved local parts."""

LOCAL_PART = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"domain": str, "reserved": [local part]}``."""
    await db.execute("INSERT INTO settings VALUES ('domain', ?)", (str(data["domain"]),))
    await db.executemany(
        "INSERT INTO reserved VALUES (?)", [(str(p),) for p in data.get("reserved", [])]
    )


async def create(command: CreateMailbox, ctx: Context) -> Record:
    """Create the employee's mailbox, or refuse the address."""
    db = ctx.db
    own = await _one(
        db,
        "SELECT address FROM mailboxes WHERE employee_id = ? AND status = 'ACTIVE'",
        command.employee_id,
    )
    if own is not None:
        return MailboxCreated(employee_id=command.employee_id, address=own[0])
    local = command.username
    address = f"{local}@{await domain_of(db)}"
    problem = None
    if not LOCAL_PART.match(local):
        problem = f"{local!r} is not a valid user name"
    elif await _one(db, "SELECT 1 FROM reserved WHERE local_part = ?", local) is not None:
        problem = f"{local} is reserved"
    elif (
        await _one(db, "SELECT 1 FROM mailboxes WHERE address = ? AND status = 'ACTIVE'", address)
        is not None
    ):
        problem = f"{address} belongs to someone else"
    if problem is not None:
        return MailboxRejected(employee_id=command.employee_id, reason=problem)
    now = ctx.now.isoformat()
    await db.execute(
        "INSERT INTO mailboxes VALUES (?, ?, ?, 'ACTIVE', ?, ?)",
        (ctx.new_id("mbx"), command.employee_id, address, now, now),
    )
    return MailboxCreated(employee_id=command.employee_id, address=address)


async def delete(command: DeleteMailbox, ctx: Context) -> Record:
    """Delete what the compensated commands created (once; later calls and unknown
    mailboxes change nothing)."""
    now = ctx.now.isoformat()
    deleted: list[str] = []
    if not ctx.compensated:
        await ctx.db.execute(
            "UPDATE mailboxes SET status = 'DELETED', updated_at = ? "
            "WHERE employee_id = ? AND address = ? AND status = 'ACTIVE'",
            (now, command.employee_id, command.address),
        )
    for mailbox_id in ctx.compensated_ids("mbx"):
        row = await _one(
            ctx.db,
            "SELECT address FROM mailboxes WHERE mailbox_id = ? AND employee_id = ? "
            "AND status = 'ACTIVE'",
            mailbox_id,
            command.employee_id,
        )
        if row is not None:
            await ctx.db.execute(
                "UPDATE mailboxes SET status = 'DELETED', updated_at = ? WHERE mailbox_id = ?",
                (now, mailbox_id),
            )
            deleted.append(str(row[0]))
    shown = command.address or (deleted[0] if deleted else "")
    return MailboxDeleted(employee_id=command.employee_id, address=shown)


async def domain_of(db: aiosqlite.Connection) -> str:
    """The service's mail domain."""
    row = await _one(db, "SELECT value FROM settings WHERE key = 'domain'")
    return str(row[0])


async def _one(db: aiosqlite.Connection, sql: str, *args: object) -> Any:
    async with db.execute(sql, args) as cursor:
        return await cursor.fetchone()


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken mailbox invariant (empty when all hold)."""
    broken: list[str] = []
    domain = await domain_of(db)
    async with db.execute(
        "SELECT address, COUNT(*) FROM mailboxes WHERE status = 'ACTIVE' "
        "GROUP BY address HAVING COUNT(*) > 1"
    ) as cursor:
        async for address, count in cursor:
            broken.append(f"{address}: {count} active mailboxes")
    async with db.execute(
        "SELECT employee_id, COUNT(*) FROM mailboxes WHERE status = 'ACTIVE' "
        "GROUP BY employee_id HAVING COUNT(*) > 1"
    ) as cursor:
        async for employee_id, count in cursor:
            broken.append(f"{employee_id}: {count} active mailboxes")
    async with db.execute("SELECT mailbox_id, address FROM mailboxes") as cursor:
        async for mailbox_id, address in cursor:
            if not str(address).endswith(f"@{domain}"):
                broken.append(f"{mailbox_id}: {address} is not in {domain}")
    return broken


async def mailboxes_of(db: aiosqlite.Connection, employee_id: str) -> list[tuple[str, str]]:
    """``(address, status)`` of each mailbox of an employee, oldest first."""
    async with db.execute(
        "SELECT address, status FROM mailboxes WHERE employee_id = ? ORDER BY rowid",
        (employee_id,),
    ) as cursor:
        return [(str(a), str(s)) async for a, s in cursor]


def participant() -> Participant:
    """The mail service definition."""
    return Participant(
        name="mail",
        handlers=(
            Handler(CreateMailbox, create, (MailboxCreated, MailboxRejected)),
            Handler(DeleteMailbox, delete, (MailboxDeleted,)),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6068,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("mail"), app)
