"""`sagas.kafka_security`: settings -> aiokafka options and faust credentials (no broker)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from sagas.dev.secure import SecureSetup
from sagas.kafka_security import (
    KafkaSecurityError,
    client_options,
    describe,
    faust_credentials,
)
from sagas.settings import KafkaSettings

SECRET = "s3cret-Pa55word"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SecureSetup:
    setup = SecureSetup(tmp_path_factory.mktemp("pki"), ("engine",))
    setup.create()
    return setup


def sasl(pki: SecureSetup, tmp_path: Path, **overrides: object) -> KafkaSettings:
    password = tmp_path / "pw"
    password.write_text(f"  {SECRET}\n")
    fields: dict[str, object] = {
        "security_protocol": "SASL_SSL",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_username": "engine",
        "sasl_password_file": password,
        "ssl_cafile": pki.ca_file,
        **overrides,
    }
    return KafkaSettings(**fields)  # type: ignore[arg-type]  # test input


def test_plaintext_adds_nothing() -> None:
    assert client_options(KafkaSettings(security_protocol="PLAINTEXT")) == {}
    assert faust_credentials(KafkaSettings(security_protocol="PLAINTEXT")) is None


def test_sasl_ssl_options_read_the_password_file(pki: SecureSetup, tmp_path: Path) -> None:
    options = client_options(sasl(pki, tmp_path))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "engine"
    assert options["sasl_plain_password"] == SECRET
    context = options["ssl_context"]
    assert isinstance(context, ssl.SSLContext)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


def test_faust_gets_the_same_options(pki: SecureSetup, tmp_path: Path) -> None:
    from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth

    settings = sasl(pki, tmp_path, sasl_mechanism="SCRAM-SHA-256")
    mapped = credentials_to_aiokafka_auth(faust_credentials(settings))
    expected = client_options(settings)
    for key in (
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
    ):
        assert mapped[key] == expected[key]
    assert isinstance(mapped["ssl_context"], ssl.SSLContext)


def test_mutual_tls_loads_the_client_certificate(pki: SecureSetup) -> None:
    settings = KafkaSettings(
        security_protocol="SSL",
        ssl_cafile=pki.ca_file,
        ssl_certfile=pki.cert_file("engine"),
        ssl_keyfile=pki.key_file("engine"),
        ssl_check_hostname=False,
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SSL"
    assert options["ssl_context"].check_hostname is False
    assert faust_credentials(settings).protocol.value == "SSL"


def test_no_secret_in_repr_or_description(pki: SecureSetup, tmp_path: Path) -> None:
    settings = sasl(pki, tmp_path, sasl_password=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)
    assert SECRET not in describe(settings)
    assert describe(settings) == "SASL_SSL (SCRAM-SHA-512 as 'engine')"
    assert SECRET not in repr(faust_credentials(settings))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"sasl_mechanism": None}, "needs KAFKA_SASL_MECHANISM"),
        ({"sasl_username": None}, "needs KAFKA_SASL_USERNAME"),
        ({"sasl_password_file": None}, "needs a password"),
        (
            {"sasl_password_file": Path("/nonexistent/pw")},
            "KAFKA_SASL_PASSWORD_FILE=/nonexistent/pw",
        ),
        (
            {"ssl_cafile": Path("/nonexistent/ca.pem")},
            "KAFKA_SSL_CAFILE=/nonexistent/ca.pem: no such",
        ),
        ({"ssl_certfile": Path(__file__)}, "needs both KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"),
    ],
)
def test_bad_configuration_is_one_line_naming_the_variable(
    pki: SecureSetup, tmp_path: Path, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(KafkaSecurityError, match=message) as caught:
        client_options(sasl(pki, tmp_path, **overrides))
    assert "\n" not in str(caught.value)


def test_a_file_that_is_not_pem_is_a_configuration_error(pki: SecureSetup, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pytest.raises(KafkaSecurityError, match="not a usable PEM"):
        client_options(sasl(pki, tmp_path, ssl_cafile=junk))


def test_the_setup_files_are_private(pki: SecureSetup) -> None:
    files = [p for p in pki.folder.rglob("*") if p.is_file()]
    assert files
    assert all(p.stat().st_mode & 0o077 == 0 for p in files)
    assert pki.password("engine") != pki.password("admin")
