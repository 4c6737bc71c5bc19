"""Fixtures of the integration tests that need more than the broker (tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.wheel_support import WheelVenv, build_venv


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> WheelVenv:
    """This checkout's wheel installed in a new virtualenv outside the repository (built
    once a session: about twenty seconds)."""
    return build_venv(tmp_path_factory.mktemp("wheel"))
