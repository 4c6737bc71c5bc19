"""docs/services.md lists every variable the services read, and no other."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sagas.participant.settings import ServiceSettings, renamed_in

ROOT = Path(__file__).resolve().parents[2]


def _documented() -> set[str]:
    text = (ROOT / "docs" / "services.md").read_text()
    return set(re.findall(r"^\| `(SERVICE_[A-Z0-9_]+)` \|", text, flags=re.MULTILINE))


def _shared() -> set[str]:
    """The engine's variables the services read too (documented once, with the engine's)."""
    fields = ServiceSettings.model_fields.values()
    return {f.validation_alias for f in fields if isinstance(f.validation_alias, str)}


def test_docs_list_exactly_the_service_variables() -> None:
    prefix = str(ServiceSettings.model_config.get("env_prefix", ""))
    own = {
        f"{prefix}{name}".upper()
        for name, field in ServiceSettings.model_fields.items()
        if field.validation_alias is None
    }
    assert _documented() == own
    configuration = (ROOT / "docs" / "configuration.md").read_text()
    assert _shared() == {"SAGAS_TOPIC_PREFIX", "SAGAS_PARTITIONS", "SAGAS_REPLICATION_FACTOR"}
    assert all(f"| `{name}` |" in configuration for name in _shared())


def test_the_old_topic_variables_are_refused_by_name() -> None:
    lines = renamed_in({"SERVICE_TOPIC_PREFIX": "t.", "SERVICE_WEB_PORT": "0"})
    assert lines == [
        "SERVICE_TOPIC_PREFIX is no longer read: set SAGAS_TOPIC_PREFIX (one name for the "
        "engine, every service and the CLI; docs/configuration.md)"
    ]
    assert renamed_in({"SAGAS_TOPIC_PREFIX": "t."}) == []


def test_the_old_fault_knobs_are_refused_with_their_new_home() -> None:
    assert not [name for name in ServiceSettings.model_fields if "fault" in name]
    assert renamed_in({"SERVICE_FAULT_LATENCY": "0.5"}) == [
        "SERVICE_FAULT_LATENCY is no longer read: faults are injected by `python -m "
        "sagas.chaos.service NAME`, which reads SAGAS_CHAOS_SERVICE_LATENCY "
        "(docs/configuration.md)"
    ]


def test_defaults_and_derived_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ServiceSettings.model_fields:
        monkeypatch.delenv(f"SERVICE_{name}".upper(), raising=False)
    for name in _shared():
        monkeypatch.delenv(name, raising=False)
    settings = ServiceSettings()
    assert settings.database("inventory") == Path("var/services/inventory.sqlite3")
    assert settings.group("inventory") == "inventory-service"
    assert settings.port(6062) == 6062
    monkeypatch.setenv("SERVICE_WEB_PORT", "0")
    monkeypatch.setenv("SAGAS_TOPIC_PREFIX", "t1.")  # the engine's variable
    settings = ServiceSettings()
    assert settings.port(6062) == 0
    assert settings.group("inventory") == "t1.inventory-service"


def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICE_WEB_PORT", "70000")
    with pytest.raises(ValueError, match="web_port"):
        ServiceSettings()
