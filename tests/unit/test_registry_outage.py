"""A registry outage is counted every time and said once, and its end once."""

from __future__ import annotations

import logging

import pytest

from sagas.contracts.errors import RegistryError
from sagas.contracts.outage import RegistryOutage


def test_an_outage_warns_once_and_its_end_is_said_once(caplog: pytest.LogCaptureFixture) -> None:
    outage = RegistryOutage(logging.getLogger("tests.outage"), "rm: ", "waiting")
    caplog.set_level(logging.INFO, logger="tests.outage")
    outage.answered()  # no outage yet: nothing to say
    for _ in range(3):
        outage.waited(RegistryError("503"))
    outage.answered()
    outage.answered()
    outage.waited(RegistryError("timeout"))
    assert outage.waits == 4
    assert outage.down
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "rm: the schema registry is unavailable ([registry-unavailable] 503); waiting",
        ),
        ("INFO", "rm: the schema registry answers again"),
        (
            "WARNING",
            "rm: the schema registry is unavailable ([registry-unavailable] timeout); waiting",
        ),
    ]
