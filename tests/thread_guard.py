"""A pytest plugin: the session fails when a non-daemon thread outlives it.

A non-daemon thread still running when the interpreter exits keeps the process alive
(``threading._shutdown`` joins it before any ``atexit`` handler runs): a green suite
that never exits fails in CI all the same. So every thread started while the suite runs
is labelled with the test (or fixture phase) that started it, and at the end of the
session every non-daemon thread still alive is reported with that label, the session
fails, and the process exits at once instead of hanging.

Loaded from ``tests/conftest.py`` (``pytest_plugins``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import weakref
from collections.abc import Generator
from typing import Any

import pytest

GRACE_S = 5.0
"""How long threads get to finish after the last test before they count as leaked."""

_current = "collection"
_origins: weakref.WeakKeyDictionary[threading.Thread, str] = weakref.WeakKeyDictionary()
_original_start = threading.Thread.start
_leaked: list[str] = []


def _labelled_start(self: threading.Thread, *args: Any, **kwargs: Any) -> None:
    _origins[self] = _current
    _original_start(self, *args, **kwargs)


def pytest_configure(config: pytest.Config) -> None:
    threading.Thread.start = _labelled_start  # type: ignore[method-assign]  # test-only wrapper


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, None, None]:
    global _current
    _current = item.nodeid
    try:
        yield
    finally:
        # Teardown of session fixtures happens inside the last test's protocol; later
        # threads come from the session's end itself.
        _current = "session end"


def _survivors() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]


def leaked_threads(grace_s: float = GRACE_S) -> list[str]:
    """Non-daemon threads still alive after ``grace_s``, each with the test that started it."""
    deadline = time.monotonic() + grace_s
    for thread in _survivors():
        thread.join(max(0.0, deadline - time.monotonic()))
    return [
        f"{t.name!r} (started by {_origins.get(t, 'something outside the tests')})"
        for t in _survivors()
    ]


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _leaked[:] = leaked_threads()
    if _leaked:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _leaked:
        return
    terminalreporter.section("threads that outlived the session", red=True)
    for line in _leaked:
        terminalreporter.line(f"non-daemon thread {line}", red=True)
    terminalreporter.line(
        "a test must close what it starts (clients, portals, faust apps); "
        "the process exits now instead of waiting for them",
        red=True,
    )


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _leaked:
        # The threads would keep the interpreter from exiting: leave now, failed.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(pytest.ExitCode.TESTS_FAILED))
