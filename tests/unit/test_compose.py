"""docker-compose.yml agrees with the code: images, ports, variables, commands."""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import opentelemetry.environment_variables as otel_api_env
import opentelemetry.sdk.environment_variables as otel_env
import pytest
import yaml

import sagas.app
from sagas.app import load_app
from sagas.dev.broker import DevKafka
from sagas.ops.cli import build_parser
from sagas.participant.settings import ServiceSettings
from sagas.settings import DEFAULT_KAFKA_VERSION
from services.app import SPEC
from services.app import app as examples
from services.workload import seed_of
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


def _parser_commands() -> dict[str, argparse.ArgumentParser]:
    actions = build_parser()._actions
    sub = next(a for a in actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _service_variables() -> set[str]:
    prefix = str(ServiceSettings.model_config.get("env_prefix", ""))
    return {f"{prefix}{name}".upper() for name in ServiceSettings.model_fields}


def test_services() -> None:
    assert set(SERVICES) == {
        "kafka",
        "jaeger",
        "prometheus",
        "engine",
        "dashboard",
        "load",
        *PARTICIPANTS,
    }
    assert set(OURS) == {"engine", "dashboard", "load", *PARTICIPANTS}


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    assert binary, "no docker-compose: run `make compose-cli` (apt-get, Debian's package)"
    done = subprocess.run(
        [binary, "-f", str(ROOT / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr


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


def test_images_are_pinned_and_ours_is_the_one_the_dockerfile_builds() -> None:
    for name, svc in SERVICES.items():
        image = str(svc["image"])
        assert ":" in image, name
        assert not image.endswith(":latest"), name
    assert {svc["image"] for svc in OURS.values()} == {"kafka-sagas:dev"}
    assert all(svc["build"] == "." for svc in OURS.values())


def test_jaeger_receives_otlp_and_serves_the_ui() -> None:
    jaeger = SERVICES["jaeger"]
    assert jaeger["image"].startswith("jaegertracing/all-in-one:")
    assert {4317, 4318, 16686} <= _container_ports(jaeger)


def test_metrics_are_exported_to_prometheus_otlp_receiver() -> None:
    prometheus = SERVICES["prometheus"]
    assert prometheus["image"].startswith("prom/prometheus:v3.")
    assert "--web.enable-otlp-receiver" in prometheus["command"]
    assert 9090 in _container_ports(prometheus)
    for name, svc in OURS.items():
        env = svc["environment"]
        assert "OTEL_METRICS_EXPORTER" not in env, name  # metrics are on
        assert env["SAGAS_TELEMETRY"] == "otlp"
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
        assert env["OTEL_EXPORTER_OTLP_METRICS_ENDPOINT"] == (
            "http://prometheus:9090/api/v1/otlp/v1/metrics"
        )
        assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == "http://jaeger:4318/v1/traces"


def test_published_ports_bind_loopback() -> None:
    for name, svc in SERVICES.items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_read_only_known_variables(name: str) -> None:
    allowed = (
        settings_variables()
        | _service_variables()
        | _standard_otel_variables()
        | {sagas.app.APP_VARIABLE}
    )
    env = OURS[name]["environment"]
    assert set(env) <= allowed, set(env) - allowed
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == "kafka:19092"
    assert env["OTEL_SERVICE_NAME"]


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_run_the_example_app(name: str) -> None:
    spec = OURS[name]["environment"][sagas.app.APP_VARIABLE]
    assert spec == SPEC
    app = load_app(spec)
    assert {p.name for p in app.participants} == set(PARTICIPANTS)


@pytest.mark.parametrize("name", sorted(OURS))
def test_our_services_wait_for_a_healthy_broker(name: str) -> None:
    assert OURS[name]["depends_on"]["kafka"]["condition"] == "service_healthy"


def test_settings_variables_are_derived_not_listed() -> None:
    # Guards the helpers: they must see the settings classes.
    assert {"KAFKA_BOOTSTRAP_SERVERS", "SAGAS_DEV_KAFKA_PORT"} <= settings_variables()
    assert {"SERVICE_WEB_HOST", "SERVICE_SEED_FILE"} <= _service_variables()


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_command_is_a_sagas_command_with_its_options(name: str) -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    command = [str(w) for w in OURS[name]["command"]]
    assert command[0] == "sagas"
    assert "sagas" in scripts
    parser = _parser_commands()[command[1]]
    args = parser.parse_args(command[2:])  # raises SystemExit on an unknown option
    assert args.handler is not None


@pytest.mark.parametrize("name", PARTICIPANTS)
def test_participant_serves_itself_from_its_seed_file(name: str) -> None:
    svc = OURS[name]
    assert svc["command"] == ["sagas", "serve", name]
    seed = str(svc["environment"]["SERVICE_SEED_FILE"])
    assert seed == f"/app/services/seeds/{name}.json"
    shipped = ROOT / seed.removeprefix("/app/")
    assert json.loads(shipped.read_text()) == seed_of(name)


def test_the_entry_apis_listen_on_every_address_inside_and_are_published() -> None:
    published = {n: svc for n, svc in OURS.items() if svc.get("ports")}
    assert set(published) == {"orders", "hr", "dashboard"}
    for name in ("orders", "hr"):
        env = OURS[name]["environment"]
        port = int(env["SERVICE_WEB_PORT"])
        assert port == examples.participant(name).web_port
        assert env["SERVICE_WEB_HOST"] == "0.0.0.0"
        assert _container_ports(OURS[name]) == {port}
        assert str(port) in " ".join(OURS[name]["healthcheck"]["test"])
    for name in set(PARTICIPANTS) - {"orders", "hr"}:  # the default stays loopback
        assert "SERVICE_WEB_HOST" not in OURS[name]["environment"]
    assert ServiceSettings.model_fields["web_host"].default == "127.0.0.1"


def test_the_dashboard_and_the_load_reach_what_they_need() -> None:
    dashboard = [str(w) for w in OURS["dashboard"]["command"]]
    assert dashboard[dashboard.index("--host") + 1] == "0.0.0.0"
    port = dashboard[dashboard.index("--port") + 1]
    assert _container_ports(OURS["dashboard"]) == {int(port)}
    load = [str(w) for w in OURS["load"]["command"]]
    assert load[load.index("--orders-url") + 1] == (
        f"http://orders:{OURS['orders']['environment']['SERVICE_WEB_PORT']}"
    )
    assert load[load.index("--hr-url") + 1] == (
        f"http://hr:{OURS['hr']['environment']['SERVICE_WEB_PORT']}"
    )
    assert OURS["load"]["restart"] == "no"
    for entry in ("orders", "hr"):
        assert OURS["load"]["depends_on"][entry]["condition"] == "service_healthy"


def test_image_is_python_311_slim_and_installs_the_project() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "FROM python:3.11-slim" in dockerfile
    assert "pip install ." in dockerfile
    assert "COPY services ./services" in dockerfile  # the app and its seed files
    assert "/app/var" in dockerfile  # the volumes' mount point, owned by the user
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".venv" in ignored
    assert ".git" in ignored
