"""Where a bench phase runs: the broker, a fresh topic prefix, and its processes.

`bench_broker` yields the broker: ``KAFKA_BOOTSTRAP_SERVERS`` when set, otherwise a
dev broker of its own (own instance folder, free ports) stopped at the end; with its
pid when it runs on this machine (for its CPU time). `Phase` starts the engine
process(es) and the participants for one phase under a fresh topic prefix: the
benchmark's instant participants (`sagas.bench.participants`) or the order saga's
services on the participant framework (`sagas.bench.framework`). It waits until every
consumer group of the phase owns its partitions (`sagas.bench.readiness`), and stops
everything it started (by pid, through a `Supervisor`).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from sagas.bench import framework
from sagas.bench.cpu import CpuMeter, listener_pid
from sagas.bench.readiness import NotReadyError, Wanted, wait_ready
from sagas.contracts import topics
from sagas.dev.broker import DevKafka, free_port
from sagas.dev.processes import ManagedProcess, ProcessSpec, Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.errors import SagasError
from sagas.settings import DevKafkaSettings, KafkaSettings

SAGA = "order_fulfilment"
INSTANT_SERVICES = ("inventory", "payments", "shipping")
"""The commands the instant participants answer (`sagas.bench.participants`)."""

Participants = Literal["instant", "framework"]


class BenchError(SagasError):
    """A bench phase could not run (a process died, or was not ready in time)."""


@dataclass(frozen=True)
class BenchBroker:
    """The broker a run measures on; ``pid`` when it is a process of this machine."""

    bootstrap: str
    pid: int | None


@contextmanager
def bench_broker(workdir: Path) -> Iterator[BenchBroker]:
    """The broker to measure on: the configured one, or a dev broker of our own."""
    external = KafkaSettings().bootstrap_servers
    if external:
        yield BenchBroker(external, _local_pid(external))
        return
    settings = DevKafkaSettings()
    broker = DevKafka(
        settings.home,
        settings.version,
        port=free_port(),
        controller_port=free_port(),
        instance_dir=workdir / "kafka",
        heap=settings.heap,
    )
    broker.start(timeout=settings.start_timeout, quiet=True)
    try:
        yield BenchBroker(broker.bootstrap_servers, broker.recorded_pid())
    finally:
        broker.stop()


def _local_pid(bootstrap: str) -> int | None:
    """The broker's pid when the first bootstrap server is on this machine."""
    host, _, port = bootstrap.split(",")[0].rpartition(":")
    if host not in ("127.0.0.1", "localhost", "[::1]") or not port.isdigit():
        return None
    return listener_pid(int(port))


def new_prefix(phase: str) -> str:
    """A topic prefix no earlier phase or run used."""
    return f"bench-{phase}-{uuid.uuid4().hex[:6]}."


@dataclass
class Phase:
    """One phase's processes: ``engines`` engine processes and the participants.

    Attributes:
        participants: "instant" (one process answering every command at once) or
            "framework" (`sagas serve NAME` per service of the saga, with stores).
        extra_env: added to every process (e.g. ``SAGAS_TELEMETRY``).
        broker_pid: the broker's pid, when known (`cpu`).
    """

    bootstrap: str
    workdir: Path
    name: str
    partitions: int = 6
    engines: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    participants: Participants = "instant"
    broker_pid: int | None = None
    prefix: str = ""
    supervisor: Supervisor | None = None
    engine_procs: list[ManagedProcess] = field(default_factory=list)
    participant_procs: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = self.prefix or new_prefix(self.name)
        self.dir = self.workdir / self.prefix.rstrip(".")

    def topic(self, name: str) -> str:
        """The broker's name of topic ``name`` in this phase."""
        return topics.physical(self.prefix, name)

    def __enter__(self) -> Phase:
        self.supervisor = Supervisor(self.dir / "logs")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()

    def _system(self) -> LocalSystem:
        assert self.supervisor is not None, "use `with Phase(...)`"
        # The layout gives every process SAGAS_PARTITIONS: the services create the
        # command topics they read when missing with the engine's partition count.
        env = {
            "SAGAS_TELEMETRY": "off",
            "SAGAS_TELEMETRY_LOG_FORMAT": "text",
            "SAGAS_TELEMETRY_FILE": str(self.dir / "telemetry" / "{service}-{pid}.jsonl"),
            **self.extra_env,
        }
        layout = SystemLayout(
            self.bootstrap, self.dir, self.prefix, self.partitions, 6.0, extra_env=env
        )
        return LocalSystem(layout, self.supervisor)

    async def start(self, deadline_s: float = 60.0) -> None:
        """Start the engines and the participants together (each creates the topics it
        needs when missing, with the same partition counts), and wait until every
        consumer group of the phase owns its partitions."""
        system = self._system()
        self.engine_procs = [
            system.start(system.engine_spec(i, (SAGA,))) for i in range(1, self.engines + 1)
        ]
        groups = self._engine_groups()
        if self.participants == "framework":
            seeds = framework.seeds()
            self.participant_procs = [
                system.start(system.service_spec(name, seed=seeds[name]))
                for name in framework.SERVICES
            ]
            groups += [
                Wanted(f"{self.prefix}{name}-service", self._commands(name), 1)
                for name in framework.SERVICES
            ]
        else:
            env = {
                "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
                "SAGAS_TOPIC_PREFIX": self.prefix,
                "SAGAS_PARTITIONS": str(self.partitions),
            }
            spec = ProcessSpec("participants", ("python", "-m", "sagas.bench.participants"), env)
            self.participant_procs = [system.start(spec)]
            commands = {t: n for s in INSTANT_SERVICES for t, n in self._commands(s).items()}
            groups.append(Wanted(f"{self.prefix}bench-participants", commands, 1))
        await self._wait(groups, deadline_s)

    def _engine_groups(self) -> list[Wanted]:
        """The engines' group: the saga inbox and the start events (orders.events), read
        in the same units (partition k of both to one engine)."""
        logs = tuple(p.log for p in self.engine_procs)
        n = self.partitions
        return [
            Wanted(
                f"{self.prefix}sagas-engine",
                {self.topic(topics.inbox(SAGA)): n, self.topic(topics.events("orders")): n},
                self.engines,
                logs,
            ),
        ]

    def _commands(self, service: str) -> dict[str, int]:
        # The engine creates the command topics with the saga's partition count.
        return {self.topic(topics.commands(service)): self.partitions}

    async def _wait(self, groups: list[Wanted], deadline_s: float) -> None:
        try:
            await wait_ready(self.bootstrap, groups, deadline_s, self.check_alive)
        except NotReadyError as exc:
            raise BenchError(f"{exc}; logs in {self.dir}") from exc

    def cpu(self) -> CpuMeter:
        """The CPU meter of this phase's components (the bench: this process)."""
        return CpuMeter(
            {
                "engine": [p.pid for p in self.engine_procs],
                "participants": [p.pid for p in self.participant_procs],
                "broker": None if self.broker_pid is None else [self.broker_pid],
                "bench": [os.getpid()],
            }
        )

    def start_process(self, name: str, argv: tuple[str, ...], env: Mapping[str, str]) -> None:
        assert self.supervisor is not None, "use `with Phase(...)`"
        self.supervisor.start(
            ProcessSpec(name, argv, {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, **env})
        )

    def check_alive(self) -> None:
        """Raise `BenchError` naming the log of any process that ended."""
        assert self.supervisor is not None
        for proc in self.supervisor:
            if not proc.alive():
                tail = self.supervisor.log_tail(proc.spec.name, 15)
                raise BenchError(
                    f"{proc.spec.name} exited ({proc.exit_code()}), log {proc.log}:\n{tail}"
                )
