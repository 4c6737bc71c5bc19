"""docs/tutorial.md from its first command to its last, as its reader does it, against
the installed wheel (the `wheel_venv` fixture) and the session's broker: `sagas run` and
`sagas serve hosting|billing` as processes, four signups placed, `sagas list` and
`sagas show` telling how each ended, the processes stopped with `kill`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from tests import tutorial_support as doc
from tests.project_support import REPO, Processes
from tests.wheel_support import WheelVenv

pytestmark = pytest.mark.kafka

ENDINGS = {
    "tenant:acme": "COMPLETED",
    "tenant:globex": "COMPLETED",
    "tenant:initech": "COMPENSATED",  # tok_empty: the charge is declined
    "tenant:www": "COMPENSATED",  # the platform keeps that subdomain
}


def all_ended(reader: doc.Reader) -> None:
    """Wait, as the reader does before `sagas list`, until every saga has ended."""
    deadline = time.monotonic() + 120
    states: dict[str, str] = {}
    while states != ENDINGS:
        reader.processes.assert_running()
        assert time.monotonic() < deadline, f"not ended after 120 s: {states}"
        rows = json.loads(reader.run("sagas list --json"))["items"]
        states = {r["saga_id"]: r["state"] for r in rows}


def rows(path: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as db:
        return sorted(db.execute(sql).fetchall())


@pytest.mark.timeout(300)
def test_the_reader_runs_the_tutorial_on_kafka(
    wheel_venv: WheelVenv, kafka_bootstrap: str, tmp_path: Path
) -> None:
    git_status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    prefix = f"t{uuid.uuid4().hex[:8]}."
    isolated = {  # this run's topics and groups on the shared broker
        "SAGAS_TOPIC_PREFIX": prefix,
        "SAGAS_ENGINE_GROUP": f"{prefix}engine",
        "SAGAS_TRANSACTIONAL_PREFIX": f"{prefix}sagas",
        "SERVICE_WEB_PORT": "0",
        "SAGAS_TELEMETRY_MODE": "off",
    }
    with Processes(tmp_path / "logs") as processes:
        reader = doc.Reader(
            tmp_path / "home", wheel_venv.bin_dir, processes, env=isolated, broker=kafka_bootstrap
        )
        reader.follow(before={"sagas list": all_ended})
    assert {name.split("-", 1)[1] for name in processes.started} == {
        "sagas-run",
        "sagas-serve-hosting",
        "sagas-serve-billing",
    }

    assert reader.output("python -m signup.place acme globex").splitlines() == [
        "placed tenant:acme",
        "placed tenant:globex",
    ]
    listed = reader.output("sagas list").splitlines()
    for saga_id, state in ENDINGS.items():
        assert any(saga_id in line and state in line for line in listed), (saga_id, listed)
    shown = reader.output("sagas show tenant:initech")
    assert "tenant_signup v1  tenant:initech  COMPENSATED" in shown
    assert "charge declined: INSUFFICIENT_FUNDS" in shown
    for line in ("create_database", "reserve_subdomain", "charge_first_invoice"):
        assert line in shown

    # What the tutorial says the services' stores hold.
    stores = reader.cwd / "var" / "services"
    assert rows(stores / "hosting.sqlite3", "SELECT tenant_id, status FROM databases") == [
        ("acme", "ACTIVE"),
        ("globex", "ACTIVE"),
        ("initech", "DROPPED"),
        ("www", "DROPPED"),
    ]
    taken = "SELECT subdomain FROM subdomains WHERE tenant_id NOT NULL"
    assert rows(stores / "hosting.sqlite3", taken) == [("acme",), ("globex",)]
    invoices = "SELECT tenant_id FROM invoices"
    assert rows(stores / "billing.sqlite3", invoices) == [("acme",), ("globex",)]

    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        == git_status
    ), "the test changed files of the repository"
