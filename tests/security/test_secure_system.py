"""The order saga end to end over SASL_SSL, each process with its own SCRAM user and ACLs.

The engine logs in with SCRAM-SHA-512, the services with SCRAM-SHA-256; each user has
only the ACLs `sagas.dev.acls` derives for it. The operators' CLI (user ``ops``) then
reads every saga back. No password appears in a process's command line, environment or
log, nor in the broker's log.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from sagas.dev.broker import DevKafka
from sagas.dev.outcomes import OutcomeWatcher
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from services.app import app as examples
from services.workload import ORDERS
from tests.reliability.order_run import OrderRun
from tests.security.conftest import (
    PREFIX,
    every_password,
    read_text,
    settings_from,
    setup_of,
    user_options,
)

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.security,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(420),
]

ORDER_COUNT = 6


def component_env(broker: DevKafka) -> dict[str, dict[str, str]]:
    setup = setup_of(broker)
    env = {"engine": setup.client_env("engine", broker.bootstrap_servers, "SCRAM-SHA-512")}
    for name in ORDERS.services:
        env[name] = setup.client_env(name, broker.bootstrap_servers, "SCRAM-SHA-256")
    return env


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(
    secure_kafka: DevKafka, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[OrderRun, list[int]]]:
    """The engine and the four order services, ORDER_COUNT orders placed and ended."""
    workdir = tmp_path_factory.mktemp("secure-system")
    layout = SystemLayout(
        secure_kafka.bootstrap_servers,
        workdir,
        prefix=PREFIX,
        partitions=3,
        component_env=component_env(secure_kafka),
    )
    codec = examples.codec()
    watcher = OutcomeWatcher(
        secure_kafka.bootstrap_servers,
        codec,
        PREFIX,
        client_options=user_options(secure_kafka, "ops"),
    )
    with Supervisor(workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        for name in ORDERS.services:
            system.start(system.service_spec(name, ORDERS.seeds[name], web=name == "orders"))
        system.start(system.engine_spec(1, sagas=(ORDERS.saga,)))
        orders = OrderRun(system, codec, watcher)
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(watcher.run())
            try:
                await system.wait_healthy("orders", deadline_s=120)
                await orders.place(ORDER_COUNT, concurrency=3)
                await orders.wait_until_ended(deadline_s=120)
                yield orders, [p.pid for p in supervisor]
            finally:
                watching.cancel()
        assert not supervisor.unexpected_exits(), supervisor.unexpected_exits()
    codec.close()


async def test_orders_end_over_sasl_ssl_with_one_user_per_component(
    run: tuple[OrderRun, list[int]],
) -> None:
    orders, _ = run
    assert len(orders.expected) == ORDER_COUNT
    assert orders.outcomes() == orders.expected


async def test_the_ops_cli_reads_every_saga_as_user_ops(
    run: tuple[OrderRun, list[int]], secure_kafka: DevKafka, tmp_path: Path
) -> None:
    orders, _ = run
    env = {
        **os.environ,
        **setup_of(secure_kafka).client_env("ops", secure_kafka.bootstrap_servers),
        "SAGAS_TOPIC_PREFIX": PREFIX,
        "SAGAS_OPS_DB": str(tmp_path / "ops.sqlite3"),
    }
    proc = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "sagas.ops.cli", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    for saga_id in orders.saga_ids():
        assert saga_id in proc.stdout


async def test_the_dashboard_follows_every_saga_as_user_dashboard(
    run: tuple[OrderRun, list[int]], secure_kafka: DevKafka, tmp_path: Path
) -> None:
    from sagas.ops.web.server import Dashboard
    from sagas.ops.web.state import WebConfig
    from services.app import app as examples

    orders, _ = run
    env = setup_of(secure_kafka).client_env("dashboard", secure_kafka.bootstrap_servers)
    config = WebConfig(
        ops_db=tmp_path / "ops.sqlite3",
        bootstrap_servers=secure_kafka.bootstrap_servers,
        topic_prefix=PREFIX,
        app=examples,
        client_options=user_options(secure_kafka, "dashboard"),
        kafka=settings_from(env),
    )
    assert "sasl_plain_password" not in repr(config)
    async with Dashboard(config, port=0) as dash, httpx.AsyncClient(timeout=10) as client:
        deadline = asyncio.get_running_loop().time() + 60
        seen: set[str] = set()
        while not orders.saga_ids() <= seen:
            assert asyncio.get_running_loop().time() < deadline, seen
            page = await client.get(f"{dash.url}/api/instances", params={"limit": 100})
            assert page.status_code == 200, page.text
            seen = {item["saga_id"] for item in page.json()["items"]}
            await asyncio.sleep(0.5)  # polling interval while the dashboard catches up
        letters = await client.get(f"{dash.url}/api/dlq")
        assert letters.status_code == 200, letters.text


async def test_no_secret_in_argv_environment_or_logs(
    run: tuple[OrderRun, list[int]], secure_kafka: DevKafka
) -> None:
    orders, pids = run
    passwords = every_password(secure_kafka)
    places: dict[str, str] = {"broker log": read_text(secure_kafka.log_file)}
    for log in sorted((orders.layout.workdir / "logs").glob("*.log")):
        places[f"log {log.name}"] = read_text(log)
    for pid in pids:
        for what in ("cmdline", "environ"):
            raw = Path(f"/proc/{pid}/{what}").read_bytes()  # noqa: ASYNC240  # procfs, instant
            places[f"{what} of {pid}"] = raw.decode(errors="replace")
    assert len(places) >= 1 + 2 * len(pids)
    assert "KAFKA_SASL_PASSWORD_FILE" in places[f"environ of {pids[0]}"]
    leaks = [
        (user, where)
        for user, pw in passwords.items()
        for where, text in places.items()
        if pw in text
    ]
    assert leaks == []
