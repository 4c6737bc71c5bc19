"""Broker compatibility: run every check against a throwaway broker of each version.

`sagas dev kafka compat --version 3.9.2 --version 4.4.0` starts, for each version in
turn, a fresh single-node broker on free ports in a temporary folder, runs the checks
of `sagas.dev.compat_checks` and `sagas.dev.faust_check` with a deadline each, stops
the broker, and reports a check x version table. The temporary folder (broker log,
faust worker logs) is deleted when every check passed and kept otherwise.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sagas.dev.broker import DevKafka, free_port
from sagas.dev.compat_checks import ALL_CHECKS, Check, CheckContext
from sagas.dev.faust_check import FAUST_CHECKS
from sagas.errors import DevKafkaError
from sagas.settings import DEFAULT_KAFKA_VERSION

DEFAULT_VERSIONS: tuple[str, ...] = ("3.9.2", DEFAULT_KAFKA_VERSION)
CHECKS: tuple[Check, ...] = ALL_CHECKS + FAUST_CHECKS
BROKER_ROW = "broker starts (KRaft, one node)"
AUDIT_ROW = "requests at deprecated versions (kafka.request.logger)"
_API_NAME = re.compile(r'"requestApiKeyName":"(\w+)"')
_API_VERSION = re.compile(r'"requestApiVersion":(\d+)')


@dataclass(frozen=True)
class Outcome:
    """One cell of the table."""

    check: str
    version: str
    ok: bool
    detail: str
    seconds: float


@dataclass(frozen=True)
class VersionReport:
    version: str
    outcomes: list[Outcome]
    workdir: Path | None  # kept for inspection; None once deleted

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)


async def run_checks(
    ctx: CheckContext, version: str, checks: Sequence[Check], deadline: timedelta
) -> list[Outcome]:
    """Run ``checks`` one after another, each bounded by ``deadline``."""
    outcomes = []
    for check in checks:
        ctx.step("starting")
        began = time.monotonic()
        timer = asyncio.timeout(deadline.total_seconds())
        try:
            async with timer:
                note = await check.run(ctx)
            ok, detail = True, note
        except TimeoutError as exc:
            ok = False
            detail = (
                f"no result within {deadline.total_seconds():g} s while {ctx.current_step}"
                if timer.expired()
                else f"{type(exc).__name__}: {exc}"
            )
        except Exception as exc:  # reported in the table: the point of the command
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        outcomes.append(Outcome(check.name, version, ok, detail, time.monotonic() - began))
    return outcomes


def deprecated_requests(log_text: str) -> Counter[str]:
    """Requests the broker logged as using a deprecated API version, by ``API vN``.

    At INFO the broker's ``kafka.request.logger`` logs only the requests whose version
    is deprecated (on 3.9: removed in 4.0), as ``Completed request:{json}`` with
    ``"requestApiVersionDeprecated":true``; the dev broker's log config keeps it at INFO.
    """
    found: Counter[str] = Counter()
    for line in log_text.splitlines():
        if '"requestApiVersionDeprecated":true' not in line:
            continue
        name, version = _API_NAME.search(line), _API_VERSION.search(line)
        if name and version:
            found[f"{name[1]} v{version[1]}"] += 1
    return found


def _two_free_ports() -> tuple[int, int]:
    port = free_port()
    controller = free_port()
    while controller == port:
        controller = free_port()
    return port, controller


def check_version(
    home: Path,
    version: str,
    deadline: timedelta,
    start_timeout: timedelta,
    checks: Sequence[Check] = CHECKS,
    keep: bool = False,
) -> VersionReport:
    """Start a throwaway broker of ``version``, run ``checks``, stop it."""
    workdir = Path(tempfile.mkdtemp(prefix=f"sagas-compat-{version}-"))
    port, controller = _two_free_ports()
    broker = DevKafka(home, version, port, controller, instance_dir=workdir / "broker")
    began = time.monotonic()
    try:
        broker.start(timeout=start_timeout, quiet=True)
    except DevKafkaError as exc:
        first_line = str(exc).splitlines()[0]
        failed = Outcome(BROKER_ROW, version, False, first_line, time.monotonic() - began)
        return VersionReport(version, [failed], workdir)
    outcomes = [Outcome(BROKER_ROW, version, True, "", time.monotonic() - began)]
    try:
        ctx = CheckContext(broker.bootstrap_servers, workdir)
        outcomes += asyncio.run(run_checks(ctx, version, checks, deadline))
    finally:
        broker.stop()
    audit = deprecated_requests(broker.log_file.read_text(errors="replace"))
    note = ", ".join(f"{k} x{n}" for k, n in sorted(audit.items())) or "none"
    outcomes.append(Outcome(AUDIT_ROW, version, True, note, 0.0))
    report = VersionReport(version, outcomes, workdir)
    if report.ok and not keep:
        shutil.rmtree(workdir, ignore_errors=True)
        return VersionReport(version, outcomes, None)
    return report


def render(reports: Sequence[VersionReport], *, details: bool) -> Table:
    """The check x version table; ``details`` adds each check's note to ok cells."""
    table = Table(title="Apache Kafka compatibility (aiokafka, faust-streaming)")
    table.add_column("check")
    for r in reports:
        table.add_column(f"Kafka {r.version}", overflow="fold")
    names = [BROKER_ROW, *(c.check for c in reports[0].outcomes if c.check != BROKER_ROW)]
    for r in reports[1:]:
        names += [o.check for o in r.outcomes if o.check not in names]
    for name in names:
        cells = []
        for r in reports:
            o = next((o for o in r.outcomes if o.check == name), None)
            if o is None:
                cells.append("[dim]not run[/dim]")
            elif not o.ok:
                cells.append(f"[red]FAILED[/red]: {o.detail}")
            elif name == AUDIT_ROW:
                cells.append(o.detail)
            else:
                note = f" ({o.detail})" if details and o.detail else ""
                cells.append(f"[green]ok[/green] {o.seconds:.1f} s{note}")
        table.add_row(name, *cells)
    return table


def run(
    home: Path,
    versions: Sequence[str],
    deadline: timedelta,
    start_timeout: timedelta,
    console: Console,
    *,
    keep: bool = False,
    details: bool = False,
) -> bool:
    """Check every version, print the table; True when every check passed."""
    reports = []
    for version in versions:
        with console.status(
            f"Kafka {version}: fetching jars if needed, starting a broker, running the checks..."
        ):
            reports.append(check_version(home, version, deadline, start_timeout, keep=keep))
    console.print(render(reports, details=details))
    for r in reports:
        if r.workdir is not None:
            console.print(f"Kafka {r.version}: broker and worker logs kept in {r.workdir}")
    return all(r.ok for r in reports)
