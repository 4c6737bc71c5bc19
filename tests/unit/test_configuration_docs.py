"""docs/configuration.md lists every variable the settings classes read, and no other."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from types import ModuleType

from pydantic import AliasChoices
from pydantic_settings import BaseSettings

import sagas.app
import sagas.chaos.participant
import sagas.contracts.settings
import sagas.settings

ROOT = Path(__file__).resolve().parents[2]
SETTINGS_MODULES: tuple[ModuleType, ...] = (
    sagas.settings,
    sagas.contracts.settings,
    sagas.chaos.participant,
)


def settings_classes() -> list[type[BaseSettings]]:
    """The pydantic-settings classes defined in the settings modules."""
    return [
        cls
        for module in SETTINGS_MODULES
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if issubclass(cls, BaseSettings)
        and cls is not BaseSettings
        and cls.__module__ == module.__name__
    ]


def variables_of(cls: type[BaseSettings]) -> set[str]:
    """The environment variables ``cls`` reads: its aliases, else env_prefix + field name."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    names: set[str] = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif isinstance(alias, AliasChoices):
            names |= {c.upper() for c in alias.choices if isinstance(c, str)}
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


def settings_variables() -> set[str]:
    return set().union(*(variables_of(cls) for cls in settings_classes()))


def _documented() -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    return set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", text, flags=re.MULTILINE))


def test_the_settings_classes_are_found() -> None:
    names = {cls.__name__ for cls in settings_classes()}
    assert {"DevKafkaSettings", "KafkaSettings", "ContractSettings", "ServiceFaults"} <= names


def test_every_settings_variable_is_documented() -> None:
    missing = settings_variables() - _documented()
    assert not missing, f"add these to docs/configuration.md: {sorted(missing)}"


def test_the_page_names_only_variables_the_code_reads() -> None:
    # The app is named before any settings object exists (sagas.app.load_app).
    read_directly = {sagas.app.APP_VARIABLE}
    known = settings_variables() | read_directly
    assert read_directly <= _documented()
    stale = {v for v in _documented() - known if not v.startswith("OTEL_")}
    assert not stale, f"docs/configuration.md names variables no settings class reads: {stale}"
