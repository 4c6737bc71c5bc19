"""CPU time per component: the engine(s), the participants, the broker, the bench.

Read from ``/proc/<pid>/stat`` (user + system time of every thread of the process),
before and after a measurement window. The broker is the dev broker's java process
(its pid file), or, with ``KAFKA_BOOTSTRAP_SERVERS`` naming a broker on this machine,
the process listening on that port if it runs ``kafka.Kafka`` (a broker in a container
is not visible: its CPU is then not measured).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

COMPONENTS = ("engine", "participants", "broker", "bench")
"""What CPU is counted for; ``total`` is their sum."""


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process (Linux /proc); 0.0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class CpuMeter:
    """The pids of each component of a phase (None: not measurable, e.g. a remote broker)."""

    pids: Mapping[str, Sequence[int] | None]

    def read(self) -> dict[str, float | None]:
        """CPU seconds so far of each component."""
        return {
            name: None if pids is None else sum(cpu_seconds(p) for p in pids)
            for name, pids in self.pids.items()
        }


def usage(
    before: Mapping[str, float | None], after: Mapping[str, float | None], per: float
) -> dict[str, float | None]:
    """CPU seconds used between two readings, divided by ``per``, plus ``total``
    (every component, the broker included) and ``total_without_broker``; a component
    not measured is None, and so is any total that would include it."""
    used: dict[str, float | None] = {}
    for name, end in after.items():
        start = before.get(name)
        used[name] = None if end is None or start is None else (end - start) / per
    used["total"] = _sum(used.values())
    used["total_without_broker"] = _sum(v for k, v in used.items() if k not in ("broker", "total"))
    return used


def _sum(values: Iterable[float | None]) -> float | None:
    found = list(values)
    return None if any(v is None for v in found) else sum(v for v in found if v is not None)


def listener_pid(port: int, wanted: bytes = b"kafka.Kafka") -> int | None:
    """The pid of the local process listening on TCP ``port`` whose command line holds
    ``wanted``; None when there is none (or it is not ours to see)."""
    inodes = _listening_inodes(port)
    if not inodes:
        return None
    sockets = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if wanted not in (entry / "cmdline").read_bytes():
                continue
            fds = list((entry / "fd").iterdir())
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if sockets & {_link(fd) for fd in fds}:
            return int(entry.name)
    return None


def _link(fd: Path) -> str:
    try:
        return os.readlink(fd)
    except OSError:  # closed meanwhile (e.g. the descriptor that listed the folder)
        return ""


def _listening_inodes(port: int) -> set[str]:
    found: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                found.add(inode)
    return found
