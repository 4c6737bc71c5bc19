"""Kafka security for every client: `KafkaSettings` -> aiokafka options, faust credentials.

Every process of the project (engine and router, participant services, the CLI, the
dashboard, the demo) reaches Kafka through the options built here, so TLS, SASL/SCRAM
and mutual TLS are configured once, from the environment and from files (see
docs/security.md)::

    options = client_options(KafkaSettings())      # aiokafka keyword arguments
    AIOKafkaConsumer(..., bootstrap_servers=..., **options)
    faust.App(..., broker_credentials=faust_credentials(KafkaSettings()))

Secrets (the SASL password, a key password) are read from `SecretStr` settings or
files when the options are built and passed to the client only: they are never logged,
never put on a command line, and `describe` names the user and mechanism, never the
password. `check_access` connects once before a process starts its clients, so a wrong
password or an untrusted certificate stops it within seconds with one clear line
instead of aiokafka's endless reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sagas.errors import ConfigurationError, SagasError
from sagas.settings import KafkaSettings


class KafkaSecurityError(ConfigurationError):
    """The Kafka security settings are inconsistent, or a file they name is unusable."""


class KafkaAccessError(SagasError):
    """The broker refused this client: wrong credentials or an untrusted certificate."""


def _read_secret(path: Path, variable: str) -> str:
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KafkaSecurityError(
            f"{variable}={path}: cannot read the file ({exc.strerror or exc})"
        ) from exc
    if not value:
        raise KafkaSecurityError(f"{variable}={path}: the file is empty")
    return value


def _sasl_password(settings: KafkaSettings) -> str:
    if settings.sasl_password is not None:
        return settings.sasl_password.get_secret_value()
    if settings.sasl_password_file is not None:
        return _read_secret(settings.sasl_password_file, "KAFKA_SASL_PASSWORD_FILE")
    raise KafkaSecurityError(
        f"KAFKA_SECURITY_PROTOCOL={settings.security_protocol} needs a password: set "
        "KAFKA_SASL_PASSWORD_FILE (or KAFKA_SASL_PASSWORD)"
    )


def _require_file(path: Path, variable: str) -> str:
    if not path.is_file():
        raise KafkaSecurityError(f"{variable}={path}: no such file")
    return str(path)


def ssl_context(settings: KafkaSettings) -> ssl.SSLContext | None:
    """The TLS context of ``settings`` (None without TLS).

    Raises:
        KafkaSecurityError: a file is missing or unreadable, the key does not match the
            certificate, or only one of certificate and key is given.
    """
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context

    cafile = settings.ssl_cafile and _require_file(settings.ssl_cafile, "KAFKA_SSL_CAFILE")
    if (settings.ssl_certfile is None) != (settings.ssl_keyfile is None):
        raise KafkaSecurityError(
            "mutual TLS needs both KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE (one is unset)"
        )
    certfile = settings.ssl_certfile and _require_file(settings.ssl_certfile, "KAFKA_SSL_CERTFILE")
    keyfile = settings.ssl_keyfile and _require_file(settings.ssl_keyfile, "KAFKA_SSL_KEYFILE")
    password = None
    if settings.ssl_key_password_file is not None:
        password = _read_secret(settings.ssl_key_password_file, "KAFKA_SSL_KEY_PASSWORD_FILE")
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=cafile, certfile=certfile, keyfile=keyfile, password=password
        )
    except ssl.SSLError as exc:
        what = "KAFKA_SSL_CERTFILE/KAFKA_SSL_KEYFILE" if certfile else "KAFKA_SSL_CAFILE"
        raise KafkaSecurityError(
            f"{what}: not a usable PEM certificate/key ({exc.reason or exc})"
        ) from exc
    context.check_hostname = settings.ssl_check_hostname
    return context


def _sasl_fields(settings: KafkaSettings) -> tuple[str, str, str]:
    """(mechanism, user, password) of a SASL protocol, checked."""
    if settings.sasl_mechanism is None:
        raise KafkaSecurityError(
            f"KAFKA_SECURITY_PROTOCOL={settings.security_protocol} needs "
            "KAFKA_SASL_MECHANISM (SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN)"
        )
    if not settings.sasl_username:
        raise KafkaSecurityError(
            f"KAFKA_SECURITY_PROTOCOL={settings.security_protocol} needs KAFKA_SASL_USERNAME"
        )
    return settings.sasl_mechanism, settings.sasl_username, _sasl_password(settings)


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Keyword arguments for every aiokafka client (producer, consumer, admin).

    The result holds the password in clear: pass it to the client, never log it.

    Raises:
        KafkaSecurityError: see `ssl_context` and `_sasl_fields`.
    """
    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return {}
    options: dict[str, Any] = {"security_protocol": protocol}
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL_"):
        mechanism, user, password = _sasl_fields(settings)
        options.update(
            sasl_mechanism=mechanism, sasl_plain_username=user, sasl_plain_password=password
        )
    return options


def faust_credentials(settings: KafkaSettings) -> Any:
    """faust's ``broker_credentials`` for ``settings`` (None for PLAINTEXT).

    faust maps them to the same aiokafka options as `client_options`
    (``faust.transport.drivers.aiokafka.credentials_to_aiokafka_auth``) for its
    consumer, its producers and the client it creates topics with.
    """
    import faust

    protocol = settings.security_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    mechanism, user, password = _sasl_fields(settings)
    # With a context faust speaks SASL_SSL, without one SASL_PLAINTEXT.
    return faust.SASLCredentials(
        username=user, password=password, ssl_context=context, mechanism=mechanism
    )


def describe(settings: KafkaSettings) -> str:
    """What a log line may say about the security settings: never a secret."""
    protocol = settings.security_protocol
    if not protocol.startswith("SASL_"):
        return protocol
    return f"{protocol} ({settings.sasl_mechanism} as {settings.sasl_username!r})"


def _hosts(bootstrap_servers: str) -> list[tuple[str, int]]:
    found = []
    for item in bootstrap_servers.split(","):
        host, _, port = item.strip().rpartition(":")
        if host and port.isdigit():
            found.append((host.strip("[]"), int(port)))
    return found


async def _closed(conn: Any) -> None:
    """Close an aiokafka connection and wait (briefly) until its transport is gone.

    ``close`` only schedules the socket's closing; a loop that ends right after (a
    process refusing to start) would otherwise collect an open TLS transport.
    """
    closing = conn.close()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(asyncio.shield(closing), 2.0)


def _tls_cause(exc: BaseException) -> ssl.SSLError | None:
    """The TLS error behind ``exc`` (aiokafka wraps it in a connection error), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _tls_refused(
    host: str, port: int, exc: ssl.SSLError, settings: KafkaSettings
) -> KafkaAccessError:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return KafkaAccessError(
            f"the TLS certificate of Kafka at {host}:{port} is not trusted: "
            f"{exc.verify_message} (KAFKA_SSL_CAFILE={settings.ssl_cafile})"
        )
    hint = (
        "it requires a client certificate: set KAFKA_SSL_CERTFILE and KAFKA_SSL_KEYFILE"
        if settings.ssl_certfile is None
        else "check KAFKA_SSL_CERTFILE: the broker does not accept it"
    )
    return KafkaAccessError(
        f"Kafka at {host}:{port} refused the TLS connection ({exc.reason or exc}); {hint}"
    )


async def check_access(
    bootstrap_servers: str,
    settings: KafkaSettings,
    options: Mapping[str, Any] | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Connect (and authenticate) once; raise at once if the broker refuses us.

    aiokafka treats a refused login like an unreachable broker: it logs and retries
    forever. This check tells them apart: a rejected password or certificate raises
    `KafkaAccessError` with the cause; a broker that does not answer is left to the
    clients' own retries (it may still be starting).

    Args:
        bootstrap_servers: as the clients get it.
        settings: for the error message (user, mechanism, CA file).
        options: `client_options` of ``settings`` (built when not given).
        timeout_s: per bootstrap server.
    """
    if settings.security_protocol == "PLAINTEXT":
        return
    from aiokafka.conn import AIOKafkaConnection
    from aiokafka.errors import KafkaError, SaslAuthenticationFailed
    from aiokafka.protocol.metadata import MetadataRequest

    opts = dict(options if options is not None else client_options(settings))
    conn_opts = {
        k: opts[k]
        for k in (
            "security_protocol",
            "ssl_context",
            "sasl_mechanism",
            "sasl_plain_username",
            "sasl_plain_password",
        )
        if k in opts
    }
    for host, port in _hosts(bootstrap_servers):
        try:
            conn = AIOKafkaConnection(
                host, port, request_timeout_ms=int(timeout_s * 1000), **conn_opts
            )
            try:
                await asyncio.wait_for(conn.connect(), timeout_s)
            except BaseException:
                await _closed(conn)
                raise
        except SaslAuthenticationFailed as exc:
            raise KafkaAccessError(
                f"Kafka at {host}:{port} rejected the login of user "
                f"{settings.sasl_username!r} ({settings.sasl_mechanism}): wrong user name "
                "or password (KAFKA_SASL_USERNAME, KAFKA_SASL_PASSWORD_FILE)"
            ) from exc
        except ssl.SSLError as exc:
            raise _tls_refused(host, port, exc, settings) from exc
        except (OSError, TimeoutError, KafkaError) as exc:
            tls = _tls_cause(exc)
            if tls is not None:
                raise _tls_refused(host, port, tls, settings) from exc
            continue  # not answering (yet): the clients' own retries handle that
        try:
            # TLS 1.3 reports a missing client certificate only after the handshake:
            # the broker closes the connection at the first request.
            await asyncio.wait_for(conn.send(MetadataRequest([])), timeout_s)
        except (OSError, TimeoutError, KafkaError) as exc:
            tls = _tls_cause(exc)
            if tls is not None:
                raise _tls_refused(host, port, tls, settings) from exc
            continue
        finally:
            await _closed(conn)
        return


async def checked_options(settings: KafkaSettings, bootstrap_servers: str) -> dict[str, Any]:
    """`client_options` of ``settings``, after `check_access` let us in.

    What every process calls once at start-up before it builds its clients.

    Raises:
        KafkaSecurityError: bad settings. KafkaAccessError: the broker refused us.
    """
    options = client_options(settings)
    await check_access(bootstrap_servers, settings, options)
    return options


__all__ = [
    "KafkaAccessError",
    "KafkaSecurityError",
    "check_access",
    "checked_options",
    "client_options",
    "describe",
    "faust_credentials",
    "ssl_context",
]
