"""The payments service: customer accounts with balances, per-payment limits and holds.

Money moves between three pots of an account, in cents: ``balance`` (free),
``held`` (authorized, not yet charged) and ``captured`` (charged).

Rules:
- ``AuthorizePayment`` holds the amount (balance -> held), or replies
  ``PaymentDeclined``: ``UNKNOWN_ACCOUNT`` (no such customer), ``LIMIT_EXCEEDED`` (more
  than the account's per-payment limit), ``INSUFFICIENT_FUNDS`` (more than the free
  balance). A currency other than the account's is rejected (``CommandFailed``, not
  retryable). An order that already holds an authorization gets it again.
- ``CapturePayment`` turns a hold into a charge (held -> captured; an amount below the
  hold returns the rest to the balance). Unknown, voided, or a larger amount:
  ``PaymentCaptureFailed``. Capturing again replies the same capture.
- ``VoidPayment`` releases the holds made by the commands it compensates (its
  ``compensates`` header; without it, the authorization named) (held -> balance).
  Voiding a voided or unknown authorization changes nothing; voiding a captured one is
  rejected (not retryable): the money is gone, a person must refund it.

Invariants (`invariants`): per account ``balance + held + captured`` equals the seeded
balance, none is negative, ``held`` is the sum of its held authorizations and
``captured`` the sum of its captures.

Run it with ``python -m services.payments``.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import aiosqlite

from sagas.contracts.record import Record
from sagas.participant import Context, Handler, Participant, Rejected
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
    DeclineReason,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentCaptureFailed,
    PaymentDeclined,
    PaymentVoided,
    VoidPayment,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS accounts (
    customer_id TEXT PRIMARY KEY,
    currency    TEXT NOT NULL,
    balance     INTEGER NOT NULL CHECK (balance >= 0),
    held        INTEGER NOT NULL CHECK (held >= 0),
    captured    INTEGER NOT NULL CHECK (captured >= 0),
    limit_cents INTEGER NOT NULL,
    seeded      INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS authorizations (
    authorization_id TEXT PRIMARY KEY,
    order_id         TEXT NOT NULL,
    customer_id      TEXT NOT NULL REFERENCES accounts,
    amount           INTEGER NOT NULL CHECK (amount > 0),
    status           TEXT NOT NULL CHECK (status IN ('HELD', 'CAPTURED', 'VOIDED')),
    capture_id       TEXT,
    captured         INTEGER,
    created_at       TEXT NOT NULL
);
"""

DEFAULT_SEED: dict[str, Any] = {
    "accounts": [
        {"customer_id": "c-1", "currency": "EUR", "balance": "1000.00", "limit": "500.00"},
        {"customer_id": "c-2", "currency": "EUR", "balance": "50.00", "limit": "500.00"},
        {"customer_id": "c-3", "currency": "EUR", "balance": "10000.00", "limit": "100.00"},
        {"customer_id": "c-4", "currency": "USD", "balance": "1000.00", "limit": "1000.00"},
    ]
}
"""The deterministic default accounts (amounts as decimal strings)."""


def cents(amount: Decimal) -> int:
    """An amount with at most two decimals, in cents."""
    return int((amount * 100).to_integral_exact())


def money(value: int) -> Decimal:
    """Cents as a two-decimal amount."""
    return (Decimal(value) / 100).quantize(Decimal("0.01"))


async def seed(db: aiosqlite.Connection, data: Mapping[str, Any]) -> None:
    """Fill an empty store: ``{"accounts": [{customer_id, currency, balance, limit}]}``."""
    rows = []
    for a in data["accounts"]:
        balance = cents(Decimal(a["balance"]))
        limit = cents(Decimal(a["limit"]))
        rows.append((a["customer_id"], a["currency"], balance, 0, 0, limit, balance))
    await db.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


async def authorize(command: AuthorizePayment, ctx: Context) -> Record:
    """Hold the amount on the customer's account, or decline."""
    db = ctx.db
    existing = await _one(
        db,
        "SELECT authorization_id, amount FROM authorizations "
        "WHERE order_id = ? AND status = 'HELD'",
        command.order_id,
    )
    if existing is not None:
        return _authorized(command, str(existing[0]), int(existing[1]))
    account = await _one(
        db,
        "SELECT currency, balance, limit_cents FROM accounts WHERE customer_id = ?",
        command.customer_id,
    )
    amount = cents(command.amount)
    if account is None:
        return _declined(command, DeclineReason.UNKNOWN_ACCOUNT)
    currency, balance, limit = account
    if currency != command.currency:
        raise Rejected(f"account {command.customer_id} is in {currency}, not {command.currency}")
    if amount > limit:
        return _declined(command, DeclineReason.LIMIT_EXCEEDED)
    if amount > balance:
        return _declined(command, DeclineReason.INSUFFICIENT_FUNDS)
    authorization_id = ctx.new_id("auth")
    await db.execute(
        "UPDATE accounts SET balance = balance - ?, held = held + ? WHERE customer_id = ?",
        (amount, amount, command.customer_id),
    )
    await db.execute(
        "INSERT INTO authorizations VALUES (?, ?, ?, ?, 'HELD', NULL, NULL, ?)",
        (authorization_id, command.order_id, command.customer_id, amount, ctx.now.isoformat()),
    )
    return _authorized(command, authorization_id, amount)


async def capture(command: CapturePayment, ctx: Context) -> Record:
    """Charge a held authorization."""
    db = ctx.db
    row = await _one(
        db,
        "SELECT customer_id, amount, status, capture_id FROM authorizations "
        "WHERE authorization_id = ?",
        command.authorization_id,
    )
    if row is None:
        return _capture_failed(command, "unknown authorization")
    customer_id, held, status, capture_id = row
    if status == "CAPTURED":
        return _captured(command, str(capture_id))
    if status == "VOIDED":
        return _capture_failed(command, "the authorization was voided")
    amount = cents(command.amount)
    if amount <= 0 or amount > held:
        return _capture_failed(command, f"cannot capture {command.amount} of {money(held)}")
    capture_id = ctx.new_id("cap")
    await db.execute(
        "UPDATE accounts SET held = held - ?, captured = captured + ?, balance = balance + ? "
        "WHERE customer_id = ?",
        (held, amount, held - amount, customer_id),
    )
    await db.execute(
        "UPDATE authorizations SET status = 'CAPTURED', capture_id = ?, captured = ? "
        "WHERE authorization_id = ?",
        (capture_id, amount, command.authorization_id),
    )
    return _captured(command, capture_id)


async def void(command: VoidPayment, ctx: Context) -> Record:
    """Release the holds the compensated commands made (once; voiding again or an unknown
    authorization changes nothing)."""
    targets = ctx.compensated_ids("auth") if ctx.compensated else (command.authorization_id,)
    voided = [a for a in targets if await _void(ctx.db, a)]
    shown = command.authorization_id or (voided[0] if voided else "")
    return PaymentVoided(order_id=command.order_id, authorization_id=shown)


async def _void(db: aiosqlite.Connection, authorization_id: str) -> bool:
    """Release one hold; False when there is none. A captured one is `Rejected`."""
    row = await _one(
        db,
        "SELECT customer_id, amount, status FROM authorizations WHERE authorization_id = ?",
        authorization_id,
    )
    if row is not None and row[2] == "CAPTURED":
        raise Rejected(f"authorization {authorization_id} is captured; refund it")
    if row is None or row[2] != "HELD":
        return False
    customer_id, amount, _ = row
    await db.execute(
        "UPDATE accounts SET held = held - ?, balance = balance + ? WHERE customer_id = ?",
        (amount, amount, customer_id),
    )
    await db.execute(
        "UPDATE authorizations SET status = 'VOIDED' WHERE authorization_id = ?",
        (authorization_id,),
    )
    return True


def _authorized(command: AuthorizePayment, authorization_id: str, amount: int) -> Record:
    return PaymentAuthorized(
        order_id=command.order_id,
        authorization_id=authorization_id,
        amount=money(amount),
        currency=command.currency,
    )


def _declined(command: AuthorizePayment, reason: DeclineReason) -> Record:
    return PaymentDeclined(order_id=command.order_id, reason=reason)


def _captured(command: CapturePayment, capture_id: str) -> Record:
    return PaymentCaptured(
        order_id=command.order_id,
        authorization_id=command.authorization_id,
        capture_id=capture_id,
    )


def _capture_failed(command: CapturePayment, reason: str) -> Record:
    return PaymentCaptureFailed(order_id=command.order_id, reason=reason)


async def _one(db: aiosqlite.Connection, sql: str, *args: object) -> Any:
    async with db.execute(sql, args) as cursor:
        return await cursor.fetchone()


async def invariants(db: aiosqlite.Connection) -> list[str]:
    """Every broken money invariant (empty when the books balance)."""
    broken: list[str] = []
    async with db.execute(
        "SELECT a.customer_id, a.balance, a.held, a.captured, a.seeded, "
        "COALESCE(SUM(CASE WHEN z.status = 'HELD' THEN z.amount END), 0), "
        "COALESCE(SUM(CASE WHEN z.status = 'CAPTURED' THEN z.captured END), 0) "
        "FROM accounts AS a LEFT JOIN authorizations AS z ON z.customer_id = a.customer_id "
        "GROUP BY a.customer_id ORDER BY a.customer_id"
    ) as cursor:
        async for customer, balance, held, captured, seeded, holds, charges in cursor:
            if balance + held + captured != seeded:
                broken.append(
                    f"{customer}: balance {money(balance)} + held {money(held)} + captured "
                    f"{money(captured)} != {money(seeded)}"
                )
            if held != holds:
                broken.append(f"{customer}: held {money(held)} != open holds {money(holds)}")
            if captured != charges:
                broken.append(f"{customer}: captured {money(captured)} != {money(charges)}")
            if min(balance, held, captured) < 0:
                broken.append(f"{customer}: a negative amount")
    return broken


async def account_of(db: aiosqlite.Connection, customer_id: str) -> tuple[Decimal, ...]:
    """``(balance, held, captured)`` of one account."""
    row = await _one(
        db, "SELECT balance, held, captured FROM accounts WHERE customer_id = ?", customer_id
    )
    return tuple(money(v) for v in row) if row else ()


def participant() -> Participant:
    """The payments service definition."""
    return Participant(
        name="payments",
        handlers=(
            Handler(AuthorizePayment, authorize, (PaymentAuthorized, PaymentDeclined)),
            Handler(CapturePayment, capture, (PaymentCaptured, PaymentCaptureFailed)),
            Handler(VoidPayment, void, (PaymentVoided,)),
        ),
        schema=SCHEMA,
        seed=seed,
        default_seed=DEFAULT_SEED,
        invariants=invariants,
        web_port=6063,
    )


if __name__ == "__main__":
    from sagas.participant import serve
    from services.app import app

    serve(app.participant("payments"), app)
