"""Settings of the participant services, read once from the environment at start-up.

Every variable is documented in docs/services.md (a unit test keeps the two in step).
All services read the same variables; what differs per service (its SQLite file, its
web port) has a per-service default, so several services can run on one machine
without any configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from sagas.settings import Duration


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
    fault_failure_rate: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="Probability that a command fails with a retryable CommandFailed.",
    )
    fault_latency: Duration = Field(
        timedelta(0), description="Delay added before every command is handled."
    )
    fault_crash_after: int | None = Field(
        None,
        ge=1,
        description="Exit the process abruptly once this many commands were applied "
        "(after the SQLite commit of the batch holding the last of them, before its "
        "replies are sent).",
    )
    fault_seed: int = Field(0, description="Seed of the fault generator (reproducible runs).")

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


def renamed_in(environ: Mapping[str, str]) -> list[str]:
    """One line per variable of ``environ`` that was renamed (see `RENAMED`)."""
    return [
        f"{old} is no longer read: set {new} (one name for the engine, every service and "
        "the CLI; docs/configuration.md)"
        for old, new in RENAMED.items()
        if old in environ
    ]
