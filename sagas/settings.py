"""Configuration: one frozen settings object built from the environment at start-up.

Every variable is documented in docs/configuration.md; a test checks that the docs and
docker-compose.yml name only variables defined here.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_KAFKA_VERSION = "4.4.0"


def _plain_seconds(value: object) -> object:
    """Accept plain seconds ("90", "0.5") besides ISO 8601 durations ("PT90S")."""
    if isinstance(value, str):
        try:
            return timedelta(seconds=float(value))
        except ValueError:
            return value
    return value


Duration = Annotated[timedelta, BeforeValidator(_plain_seconds)]
"""A duration from the environment: seconds ("90") or ISO 8601 ("PT1M30S")."""


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
    start_timeout: Duration = Field(
        timedelta(seconds=90), description="How long `start` waits for the broker to answer."
    )
    secure: bool = Field(
        False,
        description="Run the secure broker (SASL_SSL, SCRAM users, ACLs, mutual TLS) in its "
        "own instance folder; see docs/security.md.",
    )


class KafkaSettings(BaseSettings):
    """How every client of the project reaches Kafka."""

    model_config = SettingsConfigDict(env_prefix="KAFKA_", frozen=True)

    bootstrap_servers: str | None = Field(
        None,
        description="Comma-separated host:port list. When set, the dev broker is not started.",
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description="PLAINTEXT, SSL (TLS), SASL_PLAINTEXT or SASL_SSL (SASL over TLS).",
    )
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = Field(
        None, description="SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN; required with SASL_*."
    )
    sasl_username: str | None = Field(None, description="SASL user name.")
    sasl_password: SecretStr | None = Field(
        None,
        description="SASL password (never logged); prefer KAFKA_SASL_PASSWORD_FILE.",
    )
    sasl_password_file: Path | None = Field(
        None,
        description="File holding the SASL password (one line; surrounding whitespace is "
        "ignored). Used when KAFKA_SASL_PASSWORD is not set.",
    )
    ssl_cafile: Path | None = Field(
        None,
        description="PEM file of the CA(s) that signed the broker's certificate; unset: the "
        "system's trusted CAs.",
    )
    ssl_certfile: Path | None = Field(
        None, description="PEM client certificate, for mutual TLS (with KAFKA_SSL_KEYFILE)."
    )
    ssl_keyfile: Path | None = Field(
        None, description="PEM private key of KAFKA_SSL_CERTFILE, for mutual TLS."
    )
    ssl_key_password_file: Path | None = Field(
        None, description="File holding the password of an encrypted KAFKA_SSL_KEYFILE."
    )
    ssl_check_hostname: bool = Field(
        True,
        description="Check that the broker's certificate names the host connected to.",
    )


class EngineSettings(BaseSettings):
    """The saga engine (`sagas run`): topics, groups, local state and timing."""

    model_config = SettingsConfigDict(env_prefix="SAGAS_", frozen=True)

    topic_prefix: str = Field(
        "",
        description="Prefix of every topic name the engine uses (several systems, or test "
        "runs, on one cluster); participants must use the same prefix.",
    )
    partitions: int = Field(
        6, ge=1, description="Partitions of each saga inbox (and of its changelog)."
    )
    replication_factor: int = Field(1, ge=1, description="Replication of created topics.")
    engine_db: Path = Field(
        Path(".sagas/engine.db"),
        description="The engine's SQLite file; each engine process needs its own.",
    )
    engine_group: str = Field("sagas-engine", description="Consumer group of the engines.")
    transactional_prefix: str = Field(
        "sagas", description="Prefix of the per-partition transactional ids."
    )
    hold_unknown_for: Duration = Field(
        timedelta(seconds=60),
        description="How long a reply or event for a saga not started yet is kept.",
    )
    session_timeout: Duration = Field(
        timedelta(seconds=10),
        description="Consumer session timeout: how soon a dead engine's partitions move.",
    )
    max_batch: int = Field(500, ge=1, description="Most records decided in one transaction.")
    max_in_flight: int = Field(
        1,
        ge=1,
        le=2,
        description="Transactions a partition may have open at once: 1 decides a batch "
        "once the previous one committed; 2 decides the next batch while the previous one "
        "commits (committed in order). 1 measured faster on a 2-core machine "
        "(docs/benchmarks.md).",
    )
    delivery: Literal["transactional", "idempotent"] = Field(
        "transactional",
        description="How the engine writes a batch: 'transactional', one Kafka transaction "
        "with its offsets (earlier owners fenced); 'idempotent', outputs then state then "
        "offsets, each acknowledged, without transactions (faster; no fencing of a paused "
        "engine: docs/guarantees.md says what each promises).",
    )
    instance_cache: int = Field(
        2048,
        ge=0,
        description="Saga instances kept decoded after their change committed, so the next "
        "input skips the store (least recently used dropped first; 0 turns it off).",
    )
    gc_threshold: int = Field(
        10_000,
        ge=0,
        description="First-generation threshold of Python's cyclic garbage collector in "
        "the `sagas run` process (objects allocated between collections; Python's default "
        "is 700, at which the collector took a quarter of a saturated engine's CPU); 0 "
        "leaves Python's setting alone.",
    )


class OpsSettings(BaseSettings):
    """Operations (`sagas list/show/...`, `sagas web`): the read model and the dashboard."""

    model_config = SettingsConfigDict(env_prefix="SAGAS_", frozen=True)

    ops_db: Path = Field(
        Path(".sagas/ops.db"),
        description="The read model's SQLite file: every saga of every engine, and the "
        "offsets it has read up to.",
    )
    ops_catch_up_timeout: Duration = Field(
        timedelta(seconds=30),
        description="How long a CLI command reads the changelogs before answering.",
    )
    ops_action_timeout: Duration = Field(
        timedelta(seconds=30),
        description="How long an operator action waits for the engine to apply it.",
    )
    admin_token: SecretStr | None = Field(
        None,
        description="Bearer token the dashboard's actions need; unset: read-only dashboard.",
    )
    jaeger_url: str | None = Field(
        None, description="Base URL of Jaeger's UI; trace ids link to <url>/trace/<id>."
    )
    web_cors_origins: str = Field(
        "",
        description="Comma-separated origins the dashboard allows cross-origin requests "
        "from; empty (the default): CORS is off.",
    )


class TelemetrySettings(BaseSettings):
    """Traces, metrics and logs of every process (see docs/observability.md).

    The OTLP exporters also read the standard ``OTEL_*`` variables themselves
    (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_PROTOCOL``, ``OTEL_SERVICE_NAME``,
    ``OTEL_RESOURCE_ATTRIBUTES``, ...).
    """

    model_config = SettingsConfigDict(env_prefix="SAGAS_TELEMETRY_", frozen=True)

    mode: Literal["otlp", "console", "file", "off"] | None = Field(
        None,
        validation_alias="SAGAS_TELEMETRY",
        description="otlp, console, file or off. Unset: otlp when OTEL_EXPORTER_OTLP_ENDPOINT "
        "is set, otherwise off (no-op providers, nothing exported).",
    )
    file: str = Field(
        ".sagas/telemetry/{service}-{pid}.jsonl",
        description="With SAGAS_TELEMETRY=file: where spans and metrics go, one JSON object "
        "a line; {service} and {pid} are replaced, so each process has its own file.",
    )
    metrics_interval: Duration = Field(
        timedelta(seconds=30), description="How often metrics are exported."
    )
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="auto (JSON unless stderr is a terminal), json or text.",
    )
    log_level: str = Field("INFO", description="Level of the process's log.")


def settings_problem(
    exc: ValidationError,
    cls: type[BaseSettings] | None = None,
    docs: str = "docs/configuration.md",
) -> str | None:
    """One line naming every environment variable ``exc`` refused, when ``exc`` came
    from building settings (``cls``, or the settings class ``exc`` is titled after);
    None when it did not. ``docs`` is the page that documents the variables."""
    if cls is None:
        cls = next((c for c in _settings_classes() if c.__name__ == exc.title), None)
        if cls is None:
            return None
    problems = "; ".join(
        f"{_variable(cls, error['loc'])}={error['input']!r}: {error['msg']}"
        for error in exc.errors()
    )
    return f"invalid setting {problems} (see {docs})"


def _variable(cls: type[BaseSettings], loc: tuple[int | str, ...]) -> str:
    """The environment variable of an error's location: a field read through its own
    variable (``validation_alias``, e.g. the services' ``SAGAS_PARTITIONS``) is named
    as it is; any other gets the class's prefix."""
    name = "_".join(str(part) for part in loc)
    aliases = {
        str(f.validation_alias).upper()
        for f in cls.model_fields.values()
        if isinstance(f.validation_alias, str)
    }
    if loc and str(loc[0]).upper() in aliases:
        return name.upper()
    return f"{cls.model_config.get('env_prefix', '')}{name}".upper()


def _settings_classes() -> list[type[BaseSettings]]:
    found: list[type[BaseSettings]] = []
    todo = list(BaseSettings.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found
