"""Settings of the participant services, read once from the environment at start-up.

Every variable is documented in docs/services.md (a unit test keeps the two in step).
All services read the same variables; what differs per service (its SQLite file, its
web port) has a per-service default, so several services can run on one machine
without any configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """How one participant service runs: storage, web endpoint, topics, seed data."""

    model_config = SettingsConfigDict(env_prefix="SERVICE_", frozen=True, populate_by_name=True)

    data_dir: Path = Field(
        Path("var/services"),
        description="Folder of the services' SQLite files (<name>.sqlite3) and faust data.",
    )
    db_path: Path | None = Field(
        None, description="The service's SQLite file; unset means <data_dir>/<name>.sqlite3."
    )
    runner: Literal["aiokafka", "faust"] = Field(
        "aiokafka",
        description="The consuming loop: aiokafka (default) or faust (faust-streaming "
        "agents; slower on a step's path, see docs/benchmarks.md).",
    )
    web_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="Port of the health endpoint (and the service's routes); unset: the "
        "service's default; 0: no web endpoint.",
    )
    web_host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address the web endpoint listens on: loopback by default; 0.0.0.0 "
        "inside a container whose port is published (docker-compose.yml).",
    )
    group_id: str | None = Field(
        None, description="Kafka consumer group; unset means <topic_prefix><name>-service."
    )
    topic_prefix: str = Field(
        "",
        validation_alias="SAGAS_TOPIC_PREFIX",
        description="The engine's variable: prepended to every topic the service reads "
        "and writes (several systems, or test runs, on one cluster).",
    )
    topic_partitions: int = Field(
        6,
        ge=1,
        validation_alias="SAGAS_PARTITIONS",
        description="The engine's variable: partitions of the topics the service creates "
        "when missing (a domain event topic with as many as the saga inboxes is read where "
        "its events land).",
    )
    replication_factor: int = Field(
        1,
        ge=1,
        validation_alias="SAGAS_REPLICATION_FACTOR",
        description="The engine's variable: replication of the topics the service creates.",
    )
    seed_file: Path | None = Field(
        None, description="JSON file with the seed data; unset means the built-in default."
    )

    def database(self, name: str) -> Path:
        """The SQLite file of service ``name``."""
        return self.db_path or self.data_dir / f"{name}.sqlite3"

    def group(self, name: str) -> str:
        """The consumer group of service ``name``."""
        return self.group_id or f"{self.topic_prefix}{name}-service"

    def port(self, default: int) -> int:
        """The web port: the configured one, else the service's ``default``."""
        return default if self.web_port is None else self.web_port


RENAMED = {
    "SERVICE_TOPIC_PREFIX": "SAGAS_TOPIC_PREFIX",
    "SERVICE_TOPIC_PARTITIONS": "SAGAS_PARTITIONS",
}
"""Variables the services no longer read, and the one (the engine's) read instead."""


FAULTS_MOVED = {
    "SERVICE_FAULT_FAILURE_RATE": "SAGAS_CHAOS_SERVICE_FAILURE_RATE",
    "SERVICE_FAULT_LATENCY": "SAGAS_CHAOS_SERVICE_LATENCY",
    "SERVICE_FAULT_CRASH_AFTER": "SAGAS_CHAOS_SERVICE_CRASH_AFTER",
    "SERVICE_FAULT_SEED": "SAGAS_CHAOS_SERVICE_SEED",
}
"""The fault knobs the services no longer have, and the variable of the chaos entry
point (``python -m sagas.chaos.service NAME``) that injects the same fault."""


def renamed_in(environ: Mapping[str, str]) -> list[str]:
    """One line per variable of ``environ`` that was renamed (see `RENAMED`) or moved to
    the chaos entry point (see `FAULTS_MOVED`)."""
    renamed = [
        f"{old} is no longer read: set {new} (one name for the engine, every service and "
        "the CLI; docs/configuration.md)"
        for old, new in RENAMED.items()
        if old in environ
    ]
    moved = [
        f"{old} is no longer read: faults are injected by `python -m sagas.chaos.service "
        f"NAME`, which reads {new} (docs/configuration.md)"
        for old, new in FAULTS_MOVED.items()
        if old in environ
    ]
    return renamed + moved
