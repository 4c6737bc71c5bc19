"""The session-end thread check finds a thread that would keep the process alive."""

from __future__ import annotations

import threading

import pytest

from tests.thread_guard import leaked_threads


def test_a_running_non_daemon_thread_is_reported_with_the_test_that_started_it(
    request: pytest.FixtureRequest,
) -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="left-running")
    thread.start()
    try:
        found = leaked_threads(grace_s=0.05)
    finally:
        release.set()
        thread.join()

    assert any("'left-running'" in line and request.node.nodeid in line for line in found)
    assert not any("'left-running'" in line for line in leaked_threads(grace_s=0.05))


def test_daemon_threads_and_threads_that_end_in_the_grace_period_are_not_reported() -> None:
    release = threading.Event()
    daemon = threading.Thread(target=release.wait, name="daemonic", daemon=True)
    quick = threading.Thread(target=lambda: None, name="quick")
    daemon.start()
    quick.start()
    try:
        found = leaked_threads(grace_s=1.0)
    finally:
        release.set()
        daemon.join()

    assert not any("'daemonic'" in line or "'quick'" in line for line in found)
