"""Configuration: one frozen settings object built from the environment at start-up.

Every variable is documented in docs/configuration.md; a test checks that the docs and
docker-compose.yml name only variables defined here.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KAFKA_VERSION = "4.4.0"


def _default_home() -> Path:
    return Path.home() / ".cache" / "sagas"


class DevKafkaSettings(BaseSettings):
    """Settings of the local development broker (`sagas dev kafka`)."""

    model_config = SettingsConfigDict(env_prefix="SAGAS_DEV_KAFKA_", frozen=True)

    version: str = Field(DEFAULT_KAFKA_VERSION, description="Apache Kafka release to run.")
    port: int = Field(9092, ge=1, le=65535, description="Client (PLAINTEXT) port.")
    controller_port: int = Field(
        0, ge=0, le=65535, description="KRaft controller port; 0 means client port + 1."
    )
    home: Path = Field(
        default_factory=_default_home,
        description="Cache of broker jars and the dev broker's data, logs and pid file.",
    )
    heap: str = Field("512m", description="Maximum Java heap of the broker (-Xmx).")
    start_timeout: timedelta = Field(
        timedelta(seconds=90), description="How long `start` waits for the broker to answer."
    )


class KafkaSettings(BaseSettings):
    """How every client of the project reaches Kafka."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True)

    bootstrap_servers: str | None = Field(
        None,
        description="Comma-separated host:port list. When set, the dev broker is not started.",
    )
