"""Secure mode of the dev broker: a throwaway CA, SASL_SSL, SCRAM users and ACLs.

`SecureSetup` owns the ``secure/`` folder of a broker instance (every file 0600):

- ``ca.pem`` / ``ca.key``: a CA made for this instance only (openssl);
- ``broker.pem``: the broker's key and certificate (PEM keystore; SAN 127.0.0.1 and
  localhost), also its client certificate on the controller listener;
- ``users/<user>.password``: a random SCRAM password per component (`sagas.dev.acls`
  names them) plus ``admin``, created at format time through ``--add-scram`` in an
  argument *file*, so no password is ever on a command line;
- ``users/<user>.pem`` / ``.key``: a client certificate per component (mutual TLS);
- ``clients/<user>.env``: the ``KAFKA_*`` variables of that component, to source.

The broker gets a SASL_SSL client listener (SCRAM-SHA-256 and -512), an SSL listener
that requires a client certificate (mutual TLS; the certificate's CN is the user), a
controller listener that requires the broker's own certificate, the KRaft
StandardAuthorizer with ``allow.everyone.if.no.acl.found=false`` and super users
``admin`` and the broker itself. `apply_acls` creates every component's bindings
through the admin user once the broker answers.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagas.dev.acls import Acl
from sagas.errors import BrokerStartError, ToolMissingError

ADMIN = "admin"
BROKER_CN = "kafka-broker"
MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
CERT_DAYS = "30"
ALLOW = 3  # org.apache.kafka.common.acl.AclPermissionType.ALLOW


def write_private(path: Path, text: str | bytes) -> None:
    """Write ``path`` readable by its owner only (created 0600, never wider)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(text.encode() if isinstance(text, str) else text)
    os.chmod(path, 0o600)


def _openssl(*args: str, cwd: Path) -> None:
    try:
        proc = subprocess.run(
            ["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except FileNotFoundError as exc:
        raise ToolMissingError("openssl not found: it makes the dev broker's certificates") from exc
    if proc.returncode != 0:
        raise BrokerStartError(f"openssl {args[0]} failed", proc.stderr[-2000:])


@dataclass(frozen=True)
class SecureSetup:
    """The certificates, users and client settings of one secure dev broker.

    Args:
        folder: ``<instance>/secure``.
        users: the component users (admin is added).
    """

    folder: Path
    users: tuple[str, ...]

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def keystore(self) -> Path:
        return self.folder / "broker.pem"

    def password_file(self, user: str) -> Path:
        return self.folder / "users" / f"{user}.password"

    def cert_file(self, user: str) -> Path:
        return self.folder / "users" / f"{user}.pem"

    def key_file(self, user: str) -> Path:
        return self.folder / "users" / f"{user}.key"

    def env_file(self, user: str) -> Path:
        return self.folder / "clients" / f"{user}.env"

    def all_users(self) -> tuple[str, ...]:
        return (ADMIN, *self.users)

    # -- creation ---------------------------------------------------------------------

    def create(self) -> None:
        """Make the CA, the broker's and every user's certificate, and the passwords.

        Idempotent: an existing CA (and everything made with it) is kept, so a broker
        that is restarted keeps its users.
        """
        for sub in ("users", "clients"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.folder, 0o700)
        if not self.ca_file.exists():
            _openssl(
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", CERT_DAYS,
                "-subj", "/CN=sagas dev CA (throwaway)",
                cwd=self.folder,
            )  # fmt: skip
        if not self.keystore.exists():
            self._issue("broker", BROKER_CN, "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
            key = (self.folder / "broker.key").read_bytes()
            cert = (self.folder / "broker.crt").read_bytes()
            write_private(self.keystore, key + cert)
        for user in self.all_users():
            if not self.password_file(user).exists():
                write_private(self.password_file(user), secrets.token_urlsafe(24) + "\n")
            if not self.cert_file(user).exists():
                self._issue(f"users/{user}", user, "extendedKeyUsage=clientAuth\n")
                os.replace(self.folder / "users" / f"{user}.crt", self.cert_file(user))
        for path in self.folder.rglob("*"):
            if path.is_file():
                os.chmod(path, 0o600)

    def _issue(self, stem: str, cn: str, extensions: str) -> None:
        ext = self.folder / f"{Path(stem).name}.ext"
        ext.write_text(extensions)
        _openssl(
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", f"{stem}.key", "-out", f"{stem}.csr", "-subj", f"/CN={cn}",
            cwd=self.folder,
        )  # fmt: skip
        _openssl(
            "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", CERT_DAYS, "-out", f"{stem}.crt", "-extfile", ext.name,
            cwd=self.folder,
        )  # fmt: skip
        (self.folder / f"{stem}.csr").unlink()
        ext.unlink()

    def password(self, user: str) -> str:
        return self.password_file(user).read_text().strip()

    # -- broker side ------------------------------------------------------------------

    def scram_arguments(self) -> list[str]:
        """``--add-scram`` arguments of `kafka-storage format` (for an argument file)."""
        found: list[str] = []
        for user in self.all_users():
            for mechanism in MECHANISMS:
                found += [
                    "--add-scram",
                    f"{mechanism}=[name={user},password={self.password(user)}]",
                ]
        return found

    def broker_properties(self, port: int, mtls_port: int, controller_port: int) -> dict[str, str]:
        """The secure listeners, TLS stores, SASL and authorizer properties."""
        jaas = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN}" password="{self.password(ADMIN)}";'
        )
        return {
            "listeners": (
                f"SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{mtls_port},"
                f"CONTROLLER://127.0.0.1:{controller_port}"
            ),
            "advertised.listeners": (f"SASL_SSL://127.0.0.1:{port},MTLS://127.0.0.1:{mtls_port}"),
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,MTLS:SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": ",".join(MECHANISMS),
            "sasl.mechanism.inter.broker.protocol": "SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config": jaas,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "listener.name.mtls.ssl.client.auth": "required",
            "listener.name.controller.ssl.client.auth": "required",
            # CN=engine -> User:engine: a certificate maps to the same ACLs as SCRAM.
            "ssl.principal.mapping.rules": "RULE:^CN=([^,]+)$/$1/,DEFAULT",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN};User:{BROKER_CN}",
        }

    # -- client side ------------------------------------------------------------------

    def client_env(
        self, user: str, bootstrap_servers: str, mechanism: str = "SCRAM-SHA-512"
    ) -> dict[str, str]:
        """The ``KAFKA_*`` variables of ``user`` over SASL_SSL (no secret inline)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KAFKA_SASL_MECHANISM": mechanism,
            "KAFKA_SASL_USERNAME": user,
            "KAFKA_SASL_PASSWORD_FILE": str(self.password_file(user)),
            "KAFKA_SSL_CAFILE": str(self.ca_file),
        }

    def admin_options(self) -> dict[str, Any]:
        """aiokafka options of the admin user (SASL_SSL, SCRAM-SHA-512)."""
        from aiokafka.helpers import create_ssl_context

        return {
            "security_protocol": "SASL_SSL",
            "ssl_context": create_ssl_context(cafile=str(self.ca_file)),
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_plain_username": ADMIN,
            "sasl_plain_password": self.password(ADMIN),
        }

    def mtls_env(self, user: str, bootstrap_servers: str) -> dict[str, str]:
        """The ``KAFKA_*`` variables of ``user`` over mutual TLS (the MTLS listener)."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": bootstrap_servers,
            "KAFKA_SECURITY_PROTOCOL": "SSL",
            "KAFKA_SSL_CAFILE": str(self.ca_file),
            "KAFKA_SSL_CERTFILE": str(self.cert_file(user)),
            "KAFKA_SSL_KEYFILE": str(self.key_file(user)),
        }

    def write_env_files(self, bootstrap_servers: str, mtls_servers: str) -> None:
        """``clients/<user>.env`` (SASL_SSL) and ``clients/<user>-mtls.env`` per user."""
        for user in self.all_users():
            for path, env in (
                (self.env_file(user), self.client_env(user, bootstrap_servers)),
                (
                    self.folder / "clients" / f"{user}-mtls.env",
                    self.mtls_env(user, mtls_servers),
                ),
            ):
                write_private(path, "".join(f"export {k}={v}\n" for k, v in env.items()))


async def apply_acls(
    bootstrap_servers: str, setup: SecureSetup, acls: Iterable[Acl], timeout_s: float = 30
) -> int:
    """Create ``acls`` as the admin user, in one request; returns how many.

    aiokafka's admin client has no ACL call, so this sends Kafka's CreateAcls request
    (v1: resource pattern types) through aiokafka's client. Creating an existing
    binding succeeds, so a restarted broker gets the same call.
    """
    from aiokafka.client import AIOKafkaClient
    from aiokafka.protocol.admin import CreateAclsRequest, CreateAclsRequestStruct

    bindings = list(acls)

    # aiokafka's request builds one binding; this one sends them all at once.
    class CreateMany(CreateAclsRequest):  # type: ignore[misc]  # aiokafka is untyped here
        def build(self, request_struct_class: type[CreateAclsRequestStruct]) -> Any:
            return request_struct_class(
                [
                    (a.resource, a.name, a.pattern, a.principal, "*", a.operation, ALLOW)
                    for a in bindings
                ]
            )

    client = AIOKafkaClient(bootstrap_servers=bootstrap_servers, **setup.admin_options())
    try:
        await asyncio.wait_for(client.bootstrap(), timeout_s)
        request = CreateMany(0, "", 0, "", "", 0, 0)
        response = await asyncio.wait_for(client.send(client.get_random_node(), request), timeout_s)
        for acl, (error_code, message) in zip(bindings, response.creation_responses, strict=True):
            if error_code:
                raise BrokerStartError(f"creating ACL {acl.describe()} failed: {message}")
    finally:
        await client.close()
    return len(bindings)
