"""Checks on files: every SQLite database of the run passes ``PRAGMA integrity_check``."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sagas.chaos.faults.base import ChaosContext, Check
from sagas.machine import SagaInstance


def integrity_problems(db: Path) -> list[str]:
    """What ``PRAGMA integrity_check`` reports for ``db`` (empty when it is ``ok``)."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as conn:
            rows = [str(r[0]) for r in conn.execute("PRAGMA integrity_check")]
    except sqlite3.DatabaseError as exc:
        return [f"cannot check: {exc}"]
    return [] if rows == ["ok"] else rows


def databases(workdir: Path) -> list[Path]:
    """Every SQLite file of the run: the engines' stores and the services' stores."""
    return sorted(p for p in workdir.rglob("*.sqlite3") if p.is_file())


async def sqlite_integrity(
    ctx: ChaosContext, final: Sequence[SagaInstance[Any]]
) -> dict[str, list[str]]:
    """``PRAGMA integrity_check`` on every SQLite file under the run's work folder."""
    found = [
        f"{db.relative_to(ctx.workdir)}: {problem}"
        for db in databases(ctx.workdir)
        for problem in integrity_problems(db)
    ]
    return {"sqlite_integrity": found} if found else {}


CHECKS: list[Check] = [sqlite_integrity]
