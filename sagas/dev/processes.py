"""Run the system's processes locally: start, kill, restart and stop them by pid.

Used by `sagas demo`, the chaos runner and the reliability tests. Every process writes
its output to its own log file; the supervisor signals only the pids it started.

Stopping is SIGTERM, then SIGKILL when the process is still there after the grace. A
process of this system must stop on SIGTERM (each drains what it has in flight and
commits it): one that needed the SIGKILL is recorded (`ManagedProcess.killed_after_term`,
a line in its log) and `Supervisor.unclean_stops` names it, with any process that
answered SIGTERM with a non-zero status; the callers that stop a system treat both as
failures.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True)
class ProcessSpec:
    """How to start one process.

    Attributes:
        name: unique within the supervisor, e.g. ``engine-1`` or ``inventory``.
        argv: the command; ``python`` as first item means this interpreter.
        env: variables added to the supervisor's own environment.
    """

    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass
class ManagedProcess:
    """One started process.

    Attributes:
        starts: how many times it was started (restarts included).
        killed: how many times it was killed on purpose (`Supervisor.kill`).
        killed_after_term: how many stops it ignored past their grace, so that SIGKILL
            ended them (over every start, like ``killed``); 0 when every stop was clean.
        terminated: its last run was asked to stop with SIGTERM (`Supervisor.stop`).
    """

    spec: ProcessSpec
    log: Path
    popen: subprocess.Popen[bytes]
    starts: int = 1
    killed: int = 0
    killed_after_term: int = 0
    terminated: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def exit_code(self) -> int | None:
        return self.popen.poll()


class Supervisor:
    """Owns a set of local processes; ``with Supervisor(dir) as s:`` stops them all."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.processes: dict[str, ManagedProcess] = {}

    def __enter__(self) -> Supervisor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def __iter__(self) -> Iterator[ManagedProcess]:
        return iter(list(self.processes.values()))

    def start(self, spec: ProcessSpec) -> ManagedProcess:
        """Start ``spec`` (again, if it ran before: the log is appended to)."""
        previous = self.processes.get(spec.name)
        if previous is not None and previous.alive():
            raise RuntimeError(f"{spec.name} already runs as pid {previous.pid}")
        argv = [sys.executable if a == "python" else a for a in spec.argv]
        log = self.log_dir / f"{spec.name}.log"
        env = {**os.environ, **spec.env, "PYTHONUNBUFFERED": "1"}
        with log.open("ab") as out:
            popen = subprocess.Popen(
                argv,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        proc = ManagedProcess(spec, log, popen)
        if previous is not None:
            proc.starts = previous.starts + 1
            proc.killed = previous.killed
            proc.killed_after_term = previous.killed_after_term
        self.processes[spec.name] = proc
        return proc

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> None:
        """Send ``sig`` to the process (SIGKILL: reap it before returning)."""
        proc = self.processes[name]
        if not proc.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, sig)
        if sig is signal.SIGKILL:
            proc.popen.wait()
            proc.killed += 1

    def restart(self, name: str) -> ManagedProcess:
        return self.start(self.processes[name].spec)

    def stop(self, name: str, grace: timedelta = timedelta(seconds=15)) -> int | None:
        """SIGTERM, wait up to ``grace``, then SIGKILL (recorded); return the exit code."""
        proc = self.processes[name]
        self._terminate(proc)
        self._reap(proc, time.monotonic() + grace.total_seconds(), grace)
        return proc.exit_code()

    def stop_all(self, grace: timedelta = timedelta(seconds=15)) -> None:
        """`stop` every process, all signalled at once and given the same ``grace``."""
        deadline = time.monotonic() + grace.total_seconds()
        for proc in self:
            self._terminate(proc)
        for proc in self:
            self._reap(proc, deadline, grace)

    def _terminate(self, proc: ManagedProcess) -> None:
        if proc.alive():
            proc.terminated = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)

    def _reap(self, proc: ManagedProcess, deadline: float, grace: timedelta) -> None:
        try:
            proc.popen.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGKILL)
            proc.popen.wait()
            proc.killed_after_term += 1
            with proc.log.open("a") as out:
                out.write(f"supervisor: SIGKILL after SIGTERM: still running after {grace}\n")

    def unclean_stops(self) -> dict[str, str]:
        """Processes a stop had to SIGKILL, or that answered SIGTERM with a non-zero
        status: what each caller that stops a system checks, after stopping it."""
        found: dict[str, str] = {}
        for p in self:
            code = p.exit_code()
            if p.killed_after_term:
                found[p.spec.name] = f"killed after SIGTERM ({p.killed_after_term}x)"
            elif p.terminated and code not in (None, 0):
                found[p.spec.name] = f"exit {code} after SIGTERM"
        return found

    def unexpected_exits(self) -> dict[str, int]:
        """Processes that ended on their own (not killed nor stopped by us) with a
        non-zero status."""
        return {
            p.spec.name: code
            for p in self
            if (code := p.exit_code()) not in (None, 0)
            and code != -signal.SIGKILL
            and not p.terminated
        }

    def log_tail(self, name: str, lines: int = 30) -> str:
        try:
            text = self.processes[name].log.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])
