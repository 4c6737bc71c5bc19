"""docs/services.md lists every variable the services read, and no other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sagas.participant.settings import ServiceSettings

ROOT = Path(__file__).resolve().parents[2]


def _documented() -> set[str]:
    text = (ROOT / "docs" / "services.md").read_text()
    return set(re.findall(r"^\| `(SERVICE_[A-Z0-9_]+)` \|", text, flags=re.MULTILINE))


def test_docs_list_exactly_the_service_variables() -> None:
    prefix = str(ServiceSettings.model_config.get("env_prefix", ""))
    variables = {f"{prefix}{name}".upper() for name in ServiceSettings.model_fields}
    assert _documented() == variables


def test_defaults_and_derived_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ServiceSettings.model_fields:
        monkeypatch.delenv(f"SERVICE_{name}".upper(), raising=False)
    settings = ServiceSettings()
    assert settings.database("inventory") == Path("var/services/inventory.sqlite3")
    assert settings.group("inventory") == "inventory-service"
    assert settings.port(6062) == 6062
    monkeypatch.setenv("SERVICE_WEB_PORT", "0")
    monkeypatch.setenv("SERVICE_TOPIC_PREFIX", "t1.")
    monkeypatch.setenv("SERVICE_FAULT_LATENCY", "PT0.5S")
    settings = ServiceSettings()
    assert settings.port(6062) == 0
    assert settings.group("inventory") == "t1.inventory-service"
    assert settings.fault_latency.total_seconds() == 0.5


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_FAULT_FAILURE_RATE", "1.5")
    with pytest.raises(ValueError, match="fault_failure_rate"):
        ServiceSettings()
