"""Where a bench phase runs: the broker, a fresh topic prefix, and its processes.

`bench_broker` yields the bootstrap servers: ``KAFKA_BOOTSTRAP_SERVERS`` when set,
otherwise a dev broker of its own (own instance folder, free ports) stopped at the end.
`Phase` starts the engine process(es) and the benchmark participants for one phase
under a fresh topic prefix, waits until every inbox and events partition is owned, and
stops everything it started (by pid, through a `Supervisor`).
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sagas.dev.broker import DevKafka, free_port
from sagas.dev.processes import ManagedProcess, ProcessSpec, Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.errors import SagasError
from sagas.settings import DevKafkaSettings, KafkaSettings

SAGA = "order_fulfilment"
_OWNING = re.compile(r"owning (.*)")
_PART = re.compile(r"([\w.\-]+)\[(\d+)\]")


class BenchError(SagasError):
    """A bench phase could not run (a process died, or was not ready in time)."""


@contextmanager
def bench_broker(workdir: Path) -> Iterator[str]:
    """The broker to measure on: the configured one, or a dev broker of our own."""
    external = KafkaSettings().bootstrap_servers
    if external:
        yield external
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
        yield broker.bootstrap_servers
    finally:
        broker.stop()


def new_prefix(phase: str) -> str:
    """A topic prefix no earlier phase or run used."""
    return f"bench-{phase}-{uuid.uuid4().hex[:6]}."


@dataclass
class Phase:
    """One phase's processes: ``engines`` engine processes and one participants process.

    Attributes:
        extra_env: added to every engine (e.g. ``SAGAS_TELEMETRY``).
    """

    bootstrap: str
    workdir: Path
    name: str
    partitions: int = 6
    engines: int = 1
    extra_env: Mapping[str, str] = field(default_factory=dict)
    prefix: str = ""
    supervisor: Supervisor | None = None
    engine_procs: list[ManagedProcess] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.prefix = self.prefix or new_prefix(self.name)
        self.dir = self.workdir / self.prefix.rstrip(".")

    def topic(self, name: str) -> str:
        return self.prefix + name

    def __enter__(self) -> Phase:
        self.supervisor = Supervisor(self.dir / "logs")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()

    def _system(self) -> LocalSystem:
        assert self.supervisor is not None, "use `with Phase(...)`"
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
        """Start the engines, wait until they own every partition, start participants."""
        system = self._system()
        self.engine_procs = [
            system.start(system.engine_spec(i, (SAGA,))) for i in range(1, self.engines + 1)
        ]
        await self._wait_owned(deadline_s)
        env = {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap, "SAGAS_TOPIC_PREFIX": self.prefix}
        spec = ProcessSpec("participants", ("python", "-m", "sagas.bench.participants"), env)
        assert self.supervisor is not None
        self.supervisor.start(spec)

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

    async def _wait_owned(self, deadline_s: float) -> None:
        """Wait until the engines' latest ownership lines cover each inbox and events
        partition exactly once (every member joined, no rebalance in flight)."""
        end = time.monotonic() + deadline_s
        wanted = set(range(self.partitions))
        while True:
            self.check_alive()
            inbox: list[int] = []
            events: list[int] = []
            owners = 0
            for proc in self.engine_procs:
                last_inbox, last_events = _latest_ownership(proc.log)
                inbox += last_inbox
                events += last_events
                owners += bool(last_inbox)
            covered = sorted(inbox) == sorted(wanted) and sorted(events) == sorted(wanted)
            if covered and owners == min(self.engines, self.partitions):
                return
            if time.monotonic() > end:
                raise BenchError(
                    f"engines did not own all {self.partitions} partitions in {deadline_s:.0f}s "
                    f"(inbox {sorted(inbox)}, events {sorted(events)}); logs in {self.dir}"
                )
            await asyncio.sleep(0.2)  # poll interval while the group settles


def _latest_ownership(log: Path) -> tuple[list[int], list[int]]:
    inbox: list[int] = []
    events: list[int] = []
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return inbox, events
    for line in text.splitlines():
        m = _OWNING.search(line)
        if m is None:
            continue
        parts = _PART.findall(m.group(1))
        if any(t.endswith(f"{SAGA}.inbox") for t, _ in parts):
            inbox = [int(p) for t, p in parts if t.endswith(f"{SAGA}.inbox")]
        elif any(t.endswith("orders.events") for t, _ in parts):
            events = [int(p) for t, p in parts if t.endswith("orders.events")]
    return inbox, events
