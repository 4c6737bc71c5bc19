"""The directory service: employees' accounts, each with a unique user name.

Rules:
- ``CreateAccount`` derives the user name from the full name (``"Ada Lovelace"`` ->
  ``ada.lovelace``: lower case, accents dropped, other characters removed, parts joined
  by dots) and adds a digit when it is taken (``ada.lovelace2``, ``ada.lovelace3``...).
  User names are never reused, not even those of disabled accounts. A name without a
  usable letter is refused with ``AccountRejected``. An employee who already holds an
  active account gets it again.
- ``DisableAccount`` disables the accounts created by the commands it compensates (its
  ``compensates`` header: an account the employee held before is left alone); without
  the header, the active account named. Disabling a disabled or unknown account
  changes nothing and still replies ``AccountDisabled``: a compensation must finish.

Invariants (`invariants`): user names are unique and well-formed, an employee holds at
most one active account.

Run it with ``python -m services.directory``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from typing import Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant
from services.messages.directory import (
    AccountCreated,
    AccountDisabled,
    AccountRejected,
    CreateAccount,
    DisableAccount,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    account_id  TEXT PRIMARY KEY,
    employee_id TEXT NOT NULL,
    username    TEXT NOT NULL UNIQUE,
    full_name   TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('ACTIVE', 'DISABLED')),
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS accounts_by_employee ON accounts (employee_id);
"""

DEFAULT_SEED: dict[str, Any] = {
    "accounts": [
        {"employee_id": "staff-1", "full_name": "Ada Lovelace"},
        {"employee_id": "staff-2", "full_name": "Grace Hopper"},
        {"employee_id": "staff-3", "full_name": "Alan Turing"},
    ]
}
"""The deterministic default: accounts of existing staff (their user names are taken)."""

USERNAME = re.compile(r"^[a-z0-9]+(\.[a-z0-9]+)*$")


def base_username(full_name: str) -> str:
    """The user name a full name gives before collisions: ``"Zoë O'Neil"`` -> ``zoe.oneil``."""
    plain = unicodedata.normalize("NFKD", full_name).encode("ascii", "ignore").decode()
    parts = [re.sub(r"[^a-z0-9]", "", word) for word in plain.lower().split()]
    return ".".join(p for p in parts if p)


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"accounts": [{employee_id, full_name}]}`` (all active)."""
    for i, account in enumerate(data["accounts"]):
        username = await _free_username(db, base_username(account["full_name"]))
        await db.execute(
            "INSERT INTO accounts VALUES (?, ?, ?, ?, 'ACTIVE', '', '')",
            (f"acc-seed-{i}", account["employee_id"], username, account["full_name"]),
        )


async def create(command: CreateAccount, ctx: Context) -> Record:
    """Create the employee's account under a free user name."""
    db = ctx.db
    async with db.execute(
        "SELECT account_id, username FROM accounts WHERE employee_id = ? AND status = 'ACTIVE'",
        (command.employee_id,),
    ) as cursor:
        existing = await cursor.fetchone()
    if existing is not None:
        return AccountCreated(
            employee_id=command.employee_id, account_id=existing[0], username=existing[1]
        )
    base = base_username(command.full_name)
    if not base:
        return AccountRejected(
            employee_id=command.employee_id,
            reason=f"no user name can be made from {command.full_name!r}",
        )
    username = await _free_username(db, base)
    account_id = ctx.new_id("acc")
    now = ctx.now.isoformat()
    await db.execute(
        "INSERT INTO accounts VALUES (?, ?, ?, ?, 'ACTIVE', ?, ?)",
        (account_id, command.employee_id, username, command.full_name, now, now),
    )
    return AccountCreated(employee_id=command.employee_id, account_id=account_id, username=username)


async def _free_username(db: aiosqlite.Connection, base: str) -> str:
    async with db.execute(
        "SELECT username FROM accounts WHERE username = ? OR username GLOB ?",
        (base, f"{base}[0-9]*"),
    ) as cursor:
        taken = {str(row[0]) async for row in cursor}
    if base not in taken:
        return base
    n = 2
    while f"{base}{n}" in taken:
        n += 1
    return f"{base}{n}"


async def disable(command: DisableAccount, ctx: Context) -> Record:
    """Disable what the compensated commands created (once; later calls and unknown
    accounts change nothing)."""
    targets = ctx.compensated_ids("acc") if ctx.compensated else (command.account_id,)
    disabled = []
    for account_id in targets:
        cursor = await ctx.db.execute(
            "UPDATE accounts SET status = 'DISABLED', updated_at = ? "
            "WHERE account_id = ? AND employee_id = ? AND status = 'ACTIVE'",
            (ctx.now.isoformat(), account_id, command.employee_id),
        )
        if cursor.rowcount == 1:
            disabled.append(account_id)
    shown = command.account_id or (disabled[0] if disabled else "")
    return AccountDisabled(employee_id=command.employee_id, account_id=shown)


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken account invariant (empty when all hold)."""
    broken: list[str] = []
    async with db.execute("SELECT account_id, username FROM accounts") as cursor:
        async for account_id, username in cursor:
            if not USERNAME.match(username):
                broken.append(f"{account_id}: malformed user name {username!r}")
    async with db.execute(
        "SELECT employee_id, COUNT(*) FROM accounts WHERE status = 'ACTIVE' "
        "GROUP BY employee_id HAVING COUNT(*) > 1"
    ) as cursor:
        async for employee_id, count in cursor:
            broken.append(f"{employee_id}: {count} active accounts")
    async with db.execute(
        "SELECT username FROM accounts GROUP BY username HAVING COUNT(*) > 1"
    ) as cursor:
        async for (username,) in cursor:
            broken.append(f"user name {username} is not unique")
    return broken


async def accounts_of(db: aiosqlite.Connection, employee_id: str) -> list[tuple[str, str]]:
    """``(username, status)`` of each account of an employee, oldest first."""
    async with db.execute(
        "SELECT username, status FROM accounts WHERE employee_id = ? ORDER BY rowid",
        (employee_id,),
    ) as cursor:
        return [(str(u), str(s)) async for u, s in cursor]


def participant() -> Participant:
    """The directory service definition."""
    return Participant(
        name="directory",
        handlers=(
            Handler(CreateAccount, create, (AccountCreated, AccountRejected)),
            Handler(DisableAccount, disable, (AccountDisabled,)),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6066,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("directory"), app)
