"""A refused login stops a process within seconds, with one line naming the cause.

Without the start-up check aiokafka treats a rejected password or an untrusted
certificate like a broker that is down, and retries forever.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sagas.dev.broker import DevKafka
from sagas.dev.secure import SecureSetup
from sagas.kafka_security import (
    KafkaAccessError,
    KafkaSecurityError,
    check_access,
    client_options,
)
from tests.security.conftest import PREFIX, settings_from, setup_of

pytestmark = [pytest.mark.kafka, pytest.mark.security, pytest.mark.timeout(420)]

FAIL_FAST_S = 20.0
"""How much longer than its bare start-up (interpreter and imports, measured just before
on the same box) a refused process may take to exit. Start-up alone is about 3 s on an
idle machine and was 20-40 s on a CI box running several brokers at once (the
difference was up to 14 s there), so the bound is on the difference; the refusal itself
takes well under `CHECK_S`. Without the check the process never exits."""
CHECK_S = 5.0

COMMON = "aiokafka.conn, sagas.kafka_security, sagas.contracts.factory, sagas.telemetry"
ENGINE_IMPORTS = f"{COMMON}, sagas.ops.cli, sagas.ops.run_command, services.definitions"
SERVICE_IMPORTS = f"{COMMON}, services.inventory, sagas.participant.main, faust"
CLI_IMPORTS = f"{COMMON}, sagas.ops.cli, sagas.ops.commands.query, sagas.ops.commands.context"


def start_up_seconds(imports: str) -> float:
    """How long this interpreter takes to start and import ``imports`` right now."""
    began = time.monotonic()
    subprocess.run([sys.executable, "-c", f"import {imports}"], check=True, timeout=120)
    return time.monotonic() - began


def run_process(
    argv: list[str], env: dict[str, str], tmp_path: Path, imports: str | None = None
) -> tuple[int, str, float]:
    """Run ``argv`` with ``env`` added: (exit code, stderr, seconds beyond the start-up
    with ``imports``, or in all when not given)."""
    bare = start_up_seconds(imports) if imports else 0.0
    full = {
        **os.environ,
        **env,
        "SAGAS_TOPIC_PREFIX": PREFIX,
        "SAGAS_ENGINE_DB": str(tmp_path / "engine.sqlite3"),
        "SAGAS_OPS_DB": str(tmp_path / "ops.sqlite3"),
        "SERVICE_DATA_DIR": str(tmp_path / "services"),
        "SERVICE_WEB_PORT": "0",
    }
    began = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *argv], env=full, capture_output=True, text=True, timeout=120, check=False
    )
    return proc.returncode, proc.stderr, time.monotonic() - began - bare


def wrong_password_env(broker: DevKafka, user: str, tmp_path: Path) -> dict[str, str]:
    wrong = tmp_path / "wrong.password"
    wrong.write_text("not-the-password\n")
    wrong.chmod(0o600)
    env = setup_of(broker).client_env(user, broker.bootstrap_servers)
    return {**env, "KAFKA_SASL_PASSWORD_FILE": str(wrong)}


@pytest.mark.parametrize(
    ("user", "argv", "imports"),
    [
        ("engine", ["-m", "sagas.ops.cli", "run", "order_fulfilment"], ENGINE_IMPORTS),
        ("inventory", ["-m", "services.inventory"], SERVICE_IMPORTS),
    ],
    ids=["engine", "service"],
)
def test_a_wrong_password_stops_the_process_fast_with_a_clear_error(
    secure_kafka: DevKafka, tmp_path: Path, user: str, argv: list[str], imports: str
) -> None:
    env = wrong_password_env(secure_kafka, user, tmp_path)
    code, stderr, seconds = run_process(argv, env, tmp_path, imports)
    assert code == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert "rejected the login of user" in last, stderr
    assert repr(user) in last
    assert "Traceback" not in stderr
    assert seconds < FAIL_FAST_S


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
async def test_the_access_check_refuses_a_wrong_password_at_once(
    secure_kafka: DevKafka, tmp_path: Path, mechanism: str
) -> None:
    env = wrong_password_env(secure_kafka, "engine", tmp_path)
    settings = settings_from({**env, "KAFKA_SASL_MECHANISM": mechanism})
    began = time.monotonic()
    with pytest.raises(KafkaAccessError, match=f"user 'engine' \\({mechanism}\\)"):
        await check_access(secure_kafka.bootstrap_servers, settings)
    assert time.monotonic() - began < CHECK_S
    right = settings_from(
        setup_of(secure_kafka).client_env("engine", secure_kafka.bootstrap_servers, mechanism)
    )
    await check_access(secure_kafka.bootstrap_servers, right)


def test_an_untrusted_certificate_stops_the_process_fast_with_a_clear_error(
    secure_kafka: DevKafka, tmp_path: Path
) -> None:
    other = SecureSetup(tmp_path / "other-ca", ())
    other.create()  # another throwaway CA: it did not sign the broker's certificate
    env = setup_of(secure_kafka).client_env("ops", secure_kafka.bootstrap_servers)
    env["KAFKA_SSL_CAFILE"] = str(other.ca_file)
    code, stderr, seconds = run_process(["-m", "sagas.ops.cli", "list"], env, tmp_path, CLI_IMPORTS)
    assert code == 1, stderr
    last = stderr.strip().splitlines()[-1]
    assert "TLS certificate of Kafka" in last, stderr
    assert "is not trusted" in last
    assert seconds < FAIL_FAST_S


async def test_mutual_tls_without_a_client_certificate_is_refused_clearly(
    secure_kafka: DevKafka,
) -> None:
    env = setup_of(secure_kafka).mtls_env("engine", secure_kafka.mtls_servers)
    del env["KAFKA_SSL_CERTFILE"], env["KAFKA_SSL_KEYFILE"]
    settings = settings_from(env)
    began = time.monotonic()
    with pytest.raises(KafkaAccessError, match="requires a client certificate"):
        await check_access(secure_kafka.mtls_servers, settings)
    assert time.monotonic() - began < CHECK_S


def test_bad_configuration_is_a_one_line_error(secure_kafka: DevKafka, tmp_path: Path) -> None:
    env = setup_of(secure_kafka).client_env("engine", secure_kafka.bootstrap_servers)
    missing = {**env, "KAFKA_SASL_PASSWORD_FILE": str(tmp_path / "nope")}
    code, stderr, _ = run_process(["-m", "sagas.ops.cli", "run"], missing, tmp_path)
    assert code == 1
    assert stderr.strip().splitlines()[-1].startswith("error: KAFKA_SASL_PASSWORD_FILE=")
    no_mechanism = {k: v for k, v in env.items() if k != "KAFKA_SASL_MECHANISM"}
    settings = settings_from(no_mechanism)
    with pytest.raises(KafkaSecurityError, match="needs KAFKA_SASL_MECHANISM"):
        client_options(settings)
