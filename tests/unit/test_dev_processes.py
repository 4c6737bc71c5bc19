"""The process supervisor: a process that needs SIGKILL after SIGTERM is a finding."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sagas.dev.processes import ManagedProcess, ProcessSpec, Supervisor

GRACE = timedelta(seconds=0.5)

# Each prints "ready" once its SIGTERM disposition is in place.
IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN)"
EXITS_0_ON_TERM = "import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))"
DIES_OF_TERM = "import time"


def spec(name: str, setup: str) -> ProcessSpec:
    code = f"{setup}; print('ready', flush=True); time.sleep(60)"
    return ProcessSpec(name, ("python", "-c", code))


def ready(proc: ManagedProcess, within: float = 10.0) -> None:
    """Wait until the process printed "ready" (polls its log: there is no event)."""
    end = time.monotonic() + within
    while b"ready" not in proc.log.read_bytes():
        assert time.monotonic() < end, proc.log.read_text()
        time.sleep(0.01)


def test_a_process_that_ignores_sigterm_is_killed_and_reported(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as supervisor:
        stubborn = supervisor.start(spec("stubborn", IGNORES_TERM))
        polite = supervisor.start(spec("polite", EXITS_0_ON_TERM))
        ready(stubborn)
        ready(polite)
        supervisor.stop_all(grace=GRACE)

        assert (stubborn.killed_after_term, polite.killed_after_term) == (1, 0)
        assert supervisor.unclean_stops() == {"stubborn": "killed after SIGTERM (1x)"}
        assert supervisor.unexpected_exits() == {}  # stopped by us, not ended on its own
        assert "SIGKILL after SIGTERM" in stubborn.log.read_text()
        assert polite.exit_code() == 0


def test_stop_reports_a_kill_after_term_across_a_restart(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as supervisor:
        ready(supervisor.start(spec("stubborn", IGNORES_TERM)))
        assert supervisor.stop("stubborn", grace=GRACE) == -9
        restarted = supervisor.restart("stubborn")
        ready(restarted)
        supervisor.kill("stubborn")  # on purpose: not a failed stop

        assert (restarted.starts, restarted.killed, restarted.killed_after_term) == (2, 1, 1)
        assert supervisor.unclean_stops() == {"stubborn": "killed after SIGTERM (1x)"}


def test_a_process_that_dies_of_sigterm_did_not_stop_cleanly(tmp_path: Path) -> None:
    with Supervisor(tmp_path) as supervisor:
        ready(supervisor.start(spec("unhandled", DIES_OF_TERM)))
        assert supervisor.stop("unhandled", grace=GRACE) == -15

        assert supervisor.unclean_stops() == {"unhandled": "exit -15 after SIGTERM"}
