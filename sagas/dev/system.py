"""The whole system on one machine: engines and participant services as processes.

`LocalSystem` builds the process specs (environment included) for engine processes and
participant services sharing one topic prefix and one work folder, and starts them
through a `Supervisor`. `sagas demo`, the chaos runner and the reliability tests use it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from sagas.dev.broker import free_port
from sagas.dev.processes import ManagedProcess, ProcessSpec, Supervisor
from sagas.errors import SagasError


@dataclass(frozen=True)
class SystemLayout:
    """Where the system runs: Kafka, a topic prefix and a work folder.

    Attributes:
        partitions: of every topic the processes create (SAGAS_PARTITIONS): the saga
            inboxes, their changelogs, the domain event and command topics.
        session_timeout_s: of the engines' consumer group: how soon a dead engine's
            partitions move.
    """

    bootstrap_servers: str
    workdir: Path
    prefix: str = ""
    partitions: int = 6
    session_timeout_s: float = 6.0
    extra_env: Mapping[str, str] = field(default_factory=dict)
    component_env: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """More variables per component ("engine" or a service name), after ``extra_env``:
    e.g. each component's own Kafka user (`sagas.dev.secure.SecureSetup.client_env`)."""
    app: str | None = None
    """The app every process runs (``SAGAS_APP``); None: the processes find it as the
    ``sagas`` command would (``[tool.sagas]`` of the project they run in)."""

    def service_db(self, name: str) -> Path:
        return self.workdir / "services" / f"{name}.sqlite3"

    def engine_db(self, index: int) -> Path:
        return self.workdir / f"engine-{index}.sqlite3"


CHAOS_SERVICE_PREFIX = "SAGAS_CHAOS_SERVICE_"
"""The variables of ``python -m sagas.chaos.service`` (`sagas.chaos.participant`)."""


class ServiceStartError(SagasError):
    """A service of the local system did not become healthy."""


class LocalSystem:
    """Engines and services of one layout, run by one supervisor."""

    def __init__(self, layout: SystemLayout, supervisor: Supervisor) -> None:
        self.layout = layout
        self.supervisor = supervisor
        self.web_ports: dict[str, int] = {}

    def _base_env(self) -> dict[str, str]:
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.layout.bootstrap_servers,
            "SAGAS_TOPIC_PREFIX": self.layout.prefix,
            # Every process: a domain event topic a service creates first is then
            # co-partitioned with the inboxes (decided where it lands, not forwarded).
            "SAGAS_PARTITIONS": str(self.layout.partitions),
            **({"SAGAS_APP": self.layout.app} if self.layout.app else {}),
            **self.layout.extra_env,
        }

    def engine_spec(self, index: int, sagas: tuple[str, ...] = ()) -> ProcessSpec:
        prefix = self.layout.prefix
        env = {
            **self._base_env(),
            "SAGAS_ENGINE_DB": str(self.layout.engine_db(index)),
            "SAGAS_SESSION_TIMEOUT": str(self.layout.session_timeout_s),
            "SAGAS_ENGINE_GROUP": f"{prefix}sagas-engine",
            "SAGAS_TRANSACTIONAL_PREFIX": f"{prefix}sagas",
            **self.layout.component_env.get("engine", {}),
        }
        argv = ("python", "-m", "sagas.ops.cli", "run", *sagas)
        return ProcessSpec(f"engine-{index}", argv, env)

    def service_spec(
        self,
        name: str,
        seed: Mapping[str, Any] | None = None,
        faults: Mapping[str, str] | None = None,
        web: bool = False,
    ) -> ProcessSpec:
        """A participant service; ``web`` gives it a free port (see `web_ports`).

        ``faults``: e.g. ``{"latency": "0.02"}``; each is set as
        ``SAGAS_CHAOS_SERVICE_<NAME>`` and the service runs as the chaos entry point
        (``python -m sagas.chaos.service NAME``, `sagas.chaos.participant.ServiceFaults`)
        instead of ``sagas serve NAME``.
        """
        env = {
            **self._base_env(),
            "SERVICE_DATA_DIR": str(self.layout.workdir / "services"),
            "SERVICE_DB_PATH": str(self.layout.service_db(name)),
            "SERVICE_WEB_PORT": "0",
            **self.layout.component_env.get(name, {}),
        }
        if web:
            port = self.web_ports.setdefault(name, free_port())
            env["SERVICE_WEB_PORT"] = str(port)
        if seed is not None:
            seed_file = self.layout.workdir / f"{name}.seed.json"
            seed_file.parent.mkdir(parents=True, exist_ok=True)
            seed_file.write_text(json.dumps(seed))
            env["SERVICE_SEED_FILE"] = str(seed_file)
        if not faults:
            return ProcessSpec(name, ("python", "-m", "sagas.ops.cli", "serve", name), env)
        for fault, value in faults.items():
            env[f"{CHAOS_SERVICE_PREFIX}{fault.upper()}"] = value
        return ProcessSpec(name, ("python", "-m", "sagas.chaos.service", name), env)

    def start(self, spec: ProcessSpec) -> ManagedProcess:
        return self.supervisor.start(spec)

    def web_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.web_ports[name]}"

    async def wait_healthy(self, name: str, deadline_s: float = 90) -> None:
        """Wait until service ``name`` (started with ``web=True``) answers ``/health``.

        Raises:
            ServiceStartError: not in time, or the process died; names its log.
        """
        loop = asyncio.get_running_loop()
        end = loop.time() + deadline_s
        async with httpx.AsyncClient(timeout=2) as client:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(f"{self.web_url(name)}/health")).status_code == 200:
                        return
                proc = self.supervisor.processes[name]
                if loop.time() > end or not proc.alive():
                    raise ServiceStartError(
                        f"{name} did not answer /health (log {proc.log}):\n"
                        + self.supervisor.log_tail(name)
                    )
                await asyncio.sleep(0.3)  # polling interval while the service boots
