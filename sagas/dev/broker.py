"""A single-node Apache Kafka (KRaft, combined broker and controller) on 127.0.0.1.

The broker runs from jars that Maven fetched (see `sagas.dev.jars`), in an instance
folder holding its ``server.properties``, data, log and pid file. Only the pid that
this module recorded is ever signalled.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagas.dev import jars, secure
from sagas.dev.secure import SecureSetup
from sagas.errors import BrokerStartError, DevKafkaError, PortInUseError, ToolMissingError

if TYPE_CHECKING:
    from sagas.dev.acls import Acl


@dataclass(frozen=True)
class BrokerStatus:
    """What `DevKafka.status` reports."""

    running: bool
    pid: int | None
    bootstrap_servers: str
    version: str
    log_file: Path

    def describe(self) -> str:
        if self.running:
            return (
                f"Kafka {self.version} running (pid {self.pid}) at {self.bootstrap_servers}; "
                f"log: {self.log_file}"
            )
        return f"Kafka {self.version} not running (would listen at {self.bootstrap_servers})"


def _new_cluster_id() -> str:
    """16 random bytes, URL-safe base64 without padding, never starting with '-'.

    A leading '-' would be read as an option by kafka-storage's argument parser (seen
    once in 64 formats in CI); Kafka's own generator avoids it the same way.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(secrets.token_bytes(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port() -> int:
    """A port the OS considers free right now on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def answers_metadata(
    bootstrap_servers: str, wait_s: float = 5.0, options: dict[str, Any] | None = None
) -> bool:
    """Whether a broker at ``bootstrap_servers`` answers a metadata request.

    ``options``: aiokafka security options (the secure dev broker's admin).
    """
    from aiokafka.client import AIOKafkaClient

    # While the broker boots, every attempt logs a connection error: not news.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    client = AIOKafkaClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=3000, **(options or {})
    )
    try:
        await asyncio.wait_for(client.bootstrap(), wait_s)
        return bool(client.cluster.brokers())
    except Exception:  # any failure means "not ready yet"; the caller keeps polling
        return False
    finally:
        await client.close()


class DevKafka:
    """Fetch, format, start, inspect and stop one local broker.

    Args:
        home: cache folder; jars go to ``home/kafka/<version>/lib``.
        version: Apache Kafka release.
        port: client port on 127.0.0.1.
        controller_port: KRaft controller port (0: ``port + 1``).
        instance_dir: folder for this broker's config, data, log and pid file
            (default ``home/broker-<version>-<port>``).
        heap: maximum Java heap.
        proxy_port: when set, clients go through a proxy (e.g. `sagas.chaos.proxy`)
            listening on this port and relaying to ``port``: the client listener
            advertises ``127.0.0.1:<proxy_port>``, so every connection after bootstrap
            goes through the proxy too. A second listener (DIRECT, on ``direct_port``)
            advertises itself, for admin and checking work that must bypass the proxy;
            the broker's own inter-broker traffic (transaction markers) uses it.
        direct_port: the DIRECT listener's port (0: ``port + 2``); only with ``proxy_port``.
        secure: SASL_SSL with SCRAM users and ACLs per component, and a mutual-TLS
            listener (see `sagas.dev.secure`); ``port`` is then the SASL_SSL port. Not
            with ``proxy_port``.
        mtls_port: the mutual-TLS listener's port in secure mode (0: ``port + 3``).
        topic_prefix: the topic prefix the secure mode's ACLs are made for.
    """

    def __init__(
        self,
        home: Path,
        version: str,
        port: int = 9092,
        controller_port: int = 0,
        instance_dir: Path | None = None,
        heap: str = "512m",
        proxy_port: int = 0,
        direct_port: int = 0,
        secure: bool = False,
        mtls_port: int = 0,
        topic_prefix: str = "",
    ) -> None:
        self.home = home
        self.version = version
        self.port = port
        self.controller_port = controller_port or port + 1
        self.instance_dir = instance_dir or home / f"broker-{version}-{port}"
        self.heap = heap
        self.proxy_port = proxy_port
        self.direct_port = (direct_port or port + 2) if proxy_port else 0
        if secure and proxy_port:
            raise DevKafkaError("the secure dev broker does not run behind a proxy")
        self.mtls_port = (mtls_port or port + 3) if secure else 0
        self.topic_prefix = topic_prefix
        self.secure = (
            SecureSetup(self.instance_dir / "secure", tuple(self._acls())) if secure else None
        )
        # Kept so the child is reaped by `stop` (and Popen does not warn when collected).
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        """What clients use: the proxy's address when there is one."""
        return f"127.0.0.1:{self.proxy_port or self.port}"

    @property
    def direct_servers(self) -> str:
        """The broker itself, bypassing any proxy (the same as `bootstrap_servers` without one)."""
        return f"127.0.0.1:{self.direct_port}" if self.proxy_port else self.bootstrap_servers

    @property
    def log_file(self) -> Path:
        return self.instance_dir / "broker.log"

    @property
    def pid_file(self) -> Path:
        return self.instance_dir / "broker.pid"

    @property
    def data_dir(self) -> Path:
        return self.instance_dir / "data"

    # -- inspection -----------------------------------------------------------------

    def recorded_pid(self) -> int | None:
        """The pid this module recorded, if that process still runs our broker."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return None
        # Guard against pid reuse: the process must be a broker using our config.
        if str(self._properties_file()).encode() not in cmdline:
            return None
        return pid

    def status(self) -> BrokerStatus:
        pid = self.recorded_pid()
        return BrokerStatus(
            pid is not None, pid, self.bootstrap_servers, self.version, self.log_file
        )

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- lifecycle ------------------------------------------------------------------

    def fetch(self, *, quiet: bool = False) -> Path:
        return jars.fetch(self.home, self.version, quiet=quiet)

    def start(self, *, timeout: timedelta = timedelta(seconds=90), quiet: bool = False) -> bool:
        """Start the broker and wait until it answers metadata requests.

        Returns False (and does nothing) when it already runs.

        Raises:
            ToolMissingError, PortInUseError, FetchError, BrokerStartError.
        """
        if self.recorded_pid() is not None:
            return False
        java = shutil.which("java")
        if java is None:
            raise ToolMissingError(
                "java not found: install a Java 17+ runtime (e.g. `apt-get install "
                "openjdk-17-jre-headless`) to run the dev Kafka broker"
            )
        if not port_is_free(self.port):
            raise PortInUseError(
                f"port {self.port} on 127.0.0.1 is in use: stop what listens there or "
                "choose another with SAGAS_DEV_KAFKA_PORT"
            )
        if not port_is_free(self.controller_port):
            raise PortInUseError(
                f"controller port {self.controller_port} on 127.0.0.1 is in use: stop what "
                "listens there or choose another with SAGAS_DEV_KAFKA_CONTROLLER_PORT "
                "(default: SAGAS_DEV_KAFKA_PORT + 1)"
            )
        if self.direct_port and not port_is_free(self.direct_port):
            raise PortInUseError(
                f"direct listener port {self.direct_port} on 127.0.0.1 is in use: choose "
                "another (default: the client port + 2)"
            )
        if self.mtls_port and not port_is_free(self.mtls_port):
            raise PortInUseError(f"mutual-TLS port {self.mtls_port} on 127.0.0.1 is in use")
        lib = self.fetch(quiet=quiet)
        self.instance_dir.mkdir(parents=True, exist_ok=True)
        if self.secure is not None:
            self.secure.create()
        self._write_config()
        self._format(java, lib)
        proc = self._spawn(java, lib)
        self._proc = proc
        self.pid_file.write_text(str(proc.pid))
        try:
            self._wait_ready(proc, timeout)
            if self.secure is not None:
                self._secure_clients()
        except BaseException:
            self._terminate(proc.pid, grace=timedelta(seconds=10))
            proc.wait()
            self.pid_file.unlink(missing_ok=True)
            raise
        return True

    def stop(self, *, grace: timedelta = timedelta(seconds=30)) -> bool:
        """Stop the recorded broker process; False when none was running."""
        pid = self.recorded_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)  # stale file of a dead process
            return False
        self._terminate(pid, grace)
        if self._proc is not None and self._proc.pid == pid:
            self._proc.wait()
            self._proc = None
        self.pid_file.unlink(missing_ok=True)
        return True

    def kill(self) -> bool:
        """SIGKILL the recorded broker, as a crash would (chaos runs); False when none ran.

        The pid file stays behind, as after a real crash: `start` ignores a pid file
        whose process is gone and reuses the formatted data folder.
        """
        pid = self.recorded_pid()
        if pid is None:
            return False
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if self._proc is not None and self._proc.pid == pid:
            self._proc.wait()
            self._proc = None
        while _alive(pid):
            time.sleep(0.05)  # polling interval: the kernel tears the process down
        return True

    # -- secure mode ----------------------------------------------------------------

    @property
    def mtls_servers(self) -> str:
        """The mutual-TLS listener (secure mode)."""
        return f"127.0.0.1:{self.mtls_port}"

    def _acls(self) -> dict[str, list[Acl]]:
        # Imported here: the ACLs come from the app's definitions and participants (the
        # app named by SAGAS_APP or the project's [tool.sagas]).
        from sagas.app import load_app
        from sagas.dev.acls import app_acls

        return app_acls(load_app(), self.topic_prefix)

    def _secure_clients(self) -> None:
        """Create every component's ACLs and write the client env files."""
        assert self.secure is not None
        bindings = [a for found in self._acls().values() for a in found]
        asyncio.run(secure.apply_acls(self.bootstrap_servers, self.secure, bindings))
        self.secure.write_env_files(self.bootstrap_servers, self.mtls_servers)

    # -- internals ------------------------------------------------------------------

    def _properties_file(self) -> Path:
        return self.instance_dir / "server.properties"

    def _write_config(self) -> None:
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            # One node: every internal topic has a single replica.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            # Fewer internal partitions: faster first group/transaction on a dev box.
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.num.partitions": "6",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
        }
        if self.proxy_port:
            props["listeners"] += f",DIRECT://127.0.0.1:{self.direct_port}"
            props["advertised.listeners"] = (
                f"PLAINTEXT://127.0.0.1:{self.proxy_port},DIRECT://127.0.0.1:{self.direct_port}"
            )
            props["inter.broker.listener.name"] = "DIRECT"
            props["listener.security.protocol.map"] += ",DIRECT:PLAINTEXT"
        if self.secure is not None:
            ports = (self.port, self.mtls_port, self.controller_port)
            props.update(self.secure.broker_properties(*ports))
        if jars.is_kafka_4(self.version):
            props["share.coordinator.state.topic.replication.factor"] = "1"
            props["share.coordinator.state.topic.min.isr"] = "1"
        text = "".join(f"{k}={v}\n" for k, v in props.items())
        # 0600: in secure mode it holds the admin's SCRAM password (inter-broker login).
        secure.write_private(self._properties_file(), text)
        self._log_config_file().write_text(self._log_config())

    def _log_config_file(self) -> Path:
        name = "log4j2.properties" if jars.is_kafka_4(self.version) else "log4j.properties"
        return self.instance_dir / name

    def _log_config(self) -> str:
        if jars.is_kafka_4(self.version):
            return (
                "status = warn\n"
                "appender.out.type = Console\n"
                "appender.out.name = OUT\n"
                "appender.out.layout.type = PatternLayout\n"
                "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
                "rootLogger.level = INFO\n"
                "rootLogger.appenderRef.out.ref = OUT\n"
            )
        return (
            "log4j.rootLogger=INFO, out\n"
            "log4j.appender.out=org.apache.log4j.ConsoleAppender\n"
            "log4j.appender.out.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )

    def _java_base(self, java: str, lib: Path) -> list[str]:
        log_prop = (
            f"-Dlog4j2.configurationFile={self._log_config_file()}"
            if jars.is_kafka_4(self.version)
            else f"-Dlog4j.configuration=file:{self._log_config_file()}"
        )
        return [java, log_prop, "-cp", f"{lib}/*"]

    def _format(self, java: str, lib: Path) -> None:
        if (self.data_dir / "meta.properties").exists():
            return
        args = ["format", "-t", _new_cluster_id(), "-c", str(self._properties_file())]
        args_file = self.instance_dir / "format.args"
        if self.secure is not None:
            # SCRAM users exist before the broker starts; their passwords go through an
            # argument file (argparse4j's @file), never on the command line.
            lines = args + self.secure.scram_arguments()
            secure.write_private(args_file, "".join(f"{a}\n" for a in lines))
            args = [f"@{args_file}"]
        cmd = [*self._java_base(java, lib), "kafka.tools.StorageTool", *args]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        finally:
            args_file.unlink(missing_ok=True)
        if proc.returncode != 0:
            raise BrokerStartError(
                f"formatting the KRaft log directory {self.data_dir} failed",
                "\n".join((proc.stdout + proc.stderr).splitlines()[-20:]),
            )

    def _spawn(self, java: str, lib: Path) -> subprocess.Popen[bytes]:
        cmd = [
            java,
            "-Xms256m",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            *self._java_base(java, lib)[1:],
            "kafka.Kafka",
            str(self._properties_file()),
        ]
        with self.log_file.open("ab") as log:
            # A session of its own: Ctrl-C in the terminal that started it does not
            # reach the broker; `stop` does.
            return subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )

    def _wait_ready(self, proc: subprocess.Popen[bytes], timeout: timedelta) -> None:
        deadline = time.monotonic() + timeout.total_seconds()
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BrokerStartError(
                    f"the Kafka broker exited with status {proc.returncode} while starting",
                    self.log_tail(),
                )
            # Directly: the proxy may not run yet.
            options = self.secure.admin_options() if self.secure is not None else None
            with warnings.catch_warnings():
                # A TLS handshake cut short while the broker boots leaves a transport that
                # aiokafka never closes; collect it here, quietly, not in a later test.
                warnings.simplefilter("ignore", ResourceWarning)
                ready = asyncio.run(answers_metadata(self.direct_servers, 3.0, options))
                gc.collect()
            if ready:
                return
            time.sleep(0.5)  # polling interval while waiting for a condition with a deadline
        raise BrokerStartError(
            f"the Kafka broker did not answer at {self.direct_servers} within "
            f"{timeout.total_seconds():.0f}s",
            self.log_tail(),
        )

    @staticmethod
    def _terminate(pid: int, grace: timedelta) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + grace.total_seconds()
        while time.monotonic() < deadline:
            if not _alive(pid):
                return
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        while _alive(pid):
            time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        # Reap it if it is our child, so it does not linger as a zombie.
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


__all__ = ["BrokerStatus", "DevKafka", "DevKafkaError", "free_port", "port_is_free"]
