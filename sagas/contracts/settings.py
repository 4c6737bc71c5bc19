"""Settings of the message contracts, read once from the environment."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ContractSettings(BaseSettings):
    """Which schema registry ids are resolved with, and how big a message may be.

    The schemas themselves come from the app (`sagas.App`). Environment variables:
    ``SCHEMA_REGISTRY_URL``, ``SAGAS_MAX_PAYLOAD_BYTES``, ``SAGAS_SCHEMA_REGISTRY_TIMEOUT``.
    """

    model_config = SettingsConfigDict(frozen=True, populate_by_name=True)

    schema_registry_url: str | None = Field(
        None,
        validation_alias="SCHEMA_REGISTRY_URL",
        description="Confluent-compatible registry to use; unset means the embedded one.",
    )
    max_payload_bytes: int = Field(
        1024 * 1024,
        ge=5,
        validation_alias="SAGAS_MAX_PAYLOAD_BYTES",
        description="Values longer than this are dead-lettered without being parsed.",
    )
    registry_timeout: timedelta = Field(
        timedelta(seconds=5),
        validation_alias="SAGAS_SCHEMA_REGISTRY_TIMEOUT",
        description="Timeout of one request to the HTTP schema registry.",
    )
