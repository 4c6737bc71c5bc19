"""docs/tutorial.md, step 6: its `run.py` on the real broker, the engine and both
services in-process; then the stores say what each saga did."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from sagas.participant.testing import new_prefix
from sagas.runtime.store import Store
from tests import tutorial_support as doc

pytestmark = pytest.mark.kafka


@pytest.fixture
def tutorial(tmp_path: Path) -> Iterator[Path]:
    root = doc.write(tmp_path / "work")
    with doc.importable(root):
        yield root


async def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    async with aiosqlite.connect(path) as db, db.execute(sql) as cursor:
        return [tuple(row) async for row in cursor]


async def test_one_tenant_is_activated_and_one_signup_is_undone_on_kafka(
    kafka_bootstrap: str, tutorial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = importlib.import_module("tutorial.run")
    messages = importlib.import_module("tutorial.messages")
    workdir = tmp_path / "run"
    workdir.mkdir()

    ended = await run.run(kafka_bootstrap, workdir, prefix=new_prefix())

    [acme] = [t for t in ended if t.startswith("acme-")]
    [broke] = [t for t in ended if t.startswith("broke-")]
    activated = ended[acme]
    assert isinstance(activated, messages.TenantActivated)
    assert activated.hostname == f"{acme}.example.app"
    assert activated.database == "tenant_" + acme.replace("-", "_")
    assert ended[broke] == messages.SignupCancelled(
        tenant_id=broke, reason="charge declined: INSUFFICIENT_FUNDS"
    )
    printed = capsys.readouterr().out.splitlines()
    assert sorted(line.split(": ", 1)[1].split("(")[0] for line in printed) == [
        "SignupCancelled",
        "TenantActivated",
    ]

    # What the services did, from their own stores: the cancelled tenant's database is
    # dropped and its subdomain free again; only the activated tenant was charged.
    databases = await rows(workdir / "hosting.sqlite3", "SELECT tenant_id, status FROM databases")
    assert sorted(databases) == [(acme, "ACTIVE"), (broke, "DROPPED")]
    subdomains = await rows(
        workdir / "hosting.sqlite3", "SELECT subdomain FROM subdomains WHERE tenant_id NOT NULL"
    )
    assert subdomains == [(acme,)]
    invoices = await rows(workdir / "billing.sqlite3", "SELECT tenant_id, invoice_id FROM invoices")
    assert invoices == [(acme, activated.invoice_id)]
    cards = await rows(workdir / "billing.sqlite3", "SELECT token, balance FROM cards")
    assert sorted((t, Decimal(b)) for t, b in cards) == [
        ("tok_empty", Decimal("0.00")),
        ("tok_visa", Decimal("951.00")),
    ]

    # And the engine's: each saga ended as its end event says, every step recorded.
    async with await Store.open(workdir / "engine.sqlite3") as store:
        done = await store.get("tenant_signup", f"tenant:{acme}")
        undone = await store.get("tenant_signup", f"tenant:{broke}")
        history = await store.history("tenant_signup", f"tenant:{broke}")
    assert (done or {}).get("state") == "COMPLETED"
    assert (undone or {}).get("state") == "COMPENSATED"
    types = [entry["type"] for entry in history]
    assert types.index("hosting.SubdomainReleased") < types.index("hosting.DatabaseDropped")
