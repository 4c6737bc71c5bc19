"""docker-compose.yml agrees with the code: images, ports, variables, commands."""

from __future__ import annotations

import argparse
import importlib.util
import tomllib
from pathlib import Path
from typing import Any

import opentelemetry.environment_variables as otel_api_env
import opentelemetry.sdk.environment_variables as otel_env
import pytest
import yaml

from sagas.dev.broker import DevKafka
from sagas.ops.cli import build_parser
from sagas.settings import DEFAULT_KAFKA_VERSION
from tests.unit.test_configuration_docs import settings_variables

ROOT = Path(__file__).resolve().parents[2]
PARTICIPANTS = [
    "orders",
    "inventory",
    "payments",
    "shipping",
    "hr",
    "directory",
    "assets",
    "mail",
    "licensing",
    "access",
]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


SERVICES: dict[str, Any] = _compose()["services"]
OURS = {name: svc for name, svc in SERVICES.items() if "build" in svc}


def _standard_otel_variables() -> set[str]:
    names = [*vars(otel_env).values(), *vars(otel_api_env).values()]
    return {v for v in names if isinstance(v, str) and v.startswith("OTEL_")}


def _container_ports(svc: dict[str, Any]) -> set[int]:
    return {int(str(p).rsplit(":", 1)[-1].split("/")[0]) for p in svc.get("ports", [])}


def test_services() -> None:
    assert set(SERVICES) == {"kafka", "jaeger", "engine", *PARTICIPANTS}
    assert set(OURS) == {"engine", *PARTICIPANTS}


def test_kafka_is_the_pinned_release_in_kraft_mode() -> None:
    kafka = SERVICES["kafka"]
    assert kafka["image"] == f"apache/kafka:{DEFAULT_KAFKA_VERSION}"
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert 9092 in _container_ports(kafka)
    assert "healthcheck" in kafka


def test_kafka_sets_what_a_single_node_needs_like_the_dev_broker(tmp_path: Path) -> None:
    broker = DevKafka(tmp_path, DEFAULT_KAFKA_VERSION, instance_dir=tmp_path)
    broker._write_config()
    props = dict(
        line.split("=", 1) for line in (tmp_path / "server.properties").read_text().splitlines()
    )
    env = SERVICES["kafka"]["environment"]
    for key, value in props.items():
        if "replication.factor" in key or "min.isr" in key or "rebalance.delay" in key:
            assert str(env["KAFKA_" + key.upper().replace(".", "_")]) == value, key


def test_jaeger_receives_otlp_and_serves_the_ui() -> None:
    jaeger = SERVICES["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert {4317, 4318, 16686} <= _container_ports(jaeger)


def test_published_ports_bind_loopback() -> None:
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_read_only_known_variables(name: str) -> None:
    allowed = settings_variables() | _standard_otel_variables()
    env = OURS[name]["environment"]
    assert set(env) <= allowed, set(env) - allowed
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert env["OTEL_SERVICE_NAME"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://jaeger:4317"


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_wait_for_a_healthy_broker(name: str) -> None:
    assert OURS[name]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_settings_variables_are_derived_not_listed() -> None:
    # Guards the helper: it must see the settings classes.
    assert {"KAFKA_BOOTSTRAP_SERVERS", "SAGAS_DEV_KAFKA_PORT"} <= settings_variables()


def test_engine_runs_the_sagas_console_script() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    command = OURS["engine"]["command"]
    assert command[0] == "sagas"
    assert "sagas" in scripts
    actions = build_parser()._actions
    subcommands = next(a.choices for a in actions if isinstance(a, argparse._SubParsersAction))
    if command[1] not in subcommands:
        pytest.skip(f"`sagas {command[1]}` is not written yet")


@pytest.mark.parametrize("name", PARTICIPANTS)
def test_participant_runs_its_module(name: str) -> None:
    command = OURS[name]["command"]
    assert command == ["python", "-m", f"services.{name}"]
    if importlib.util.find_spec(f"services.{name}") is None:
        pytest.skip(f"services/{name}.py is not written yet")
    source = (ROOT / "services" / f"{name}.py").read_text()
    assert '__name__ == "__main__"' in source


def test_image_is_python_311_slim_and_installs_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install ." in dockerfile
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored
    assert ".git" in ignored
