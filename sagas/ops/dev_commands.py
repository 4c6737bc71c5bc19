"""`sagas dev kafka ...`: manage the local development broker."""

from __future__ import annotations

import argparse
from datetime import timedelta

from sagas.dev.cluster import dev_broker, external_bootstrap, load_settings
from sagas.settings import DevKafkaSettings


def _external_notice() -> int | None:
    servers = external_bootstrap()
    if servers:
        print(f"KAFKA_BOOTSTRAP_SERVERS={servers} is set: using that cluster, nothing to manage")
        return 0
    return None


def kafka_fetch(args: argparse.Namespace) -> int:
    broker = dev_broker()
    lib = broker.fetch()
    print(f"Apache Kafka {broker.version} jars in {lib}")
    return 0


def kafka_start(args: argparse.Namespace) -> int:
    if (rc := _external_notice()) is not None:
        return rc
    settings = load_settings(DevKafkaSettings)
    broker = dev_broker(settings, secure=args.secure)
    started = broker.start(timeout=settings.start_timeout)
    status = broker.status()
    print(("started: " if started else "already running: ") + status.describe())
    if broker.secure is not None:
        clients = broker.secure.env_file("ops").parent
        print(
            f"secure: SASL_SSL at {broker.bootstrap_servers}, mutual TLS at "
            f"{broker.mtls_servers}; each component's KAFKA_* settings are in {clients} "
            f"(e.g. `. {broker.secure.env_file('ops')}`)"
        )
    return 0


def kafka_stop(args: argparse.Namespace) -> int:
    if (rc := _external_notice()) is not None:
        return rc
    broker = dev_broker(secure=args.secure)
    pid = broker.recorded_pid()
    if broker.stop():
        print(f"stopped Kafka (pid {pid})")
    else:
        print("Kafka was not running")
    return 0


def kafka_status(args: argparse.Namespace) -> int:
    if (rc := _external_notice()) is not None:
        return rc
    status = dev_broker(secure=args.secure).status()
    print(status.describe())
    return 0 if status.running else 3


def kafka_logs(args: argparse.Namespace) -> int:
    broker = dev_broker()
    tail = broker.log_tail(args.lines)
    print(tail if tail else f"no log yet at {broker.log_file}")
    return 0


def kafka_compat(args: argparse.Namespace) -> int:
    from rich.console import Console

    from sagas.dev import compat

    settings = load_settings(DevKafkaSettings)
    ok = compat.run(
        settings.home,
        args.versions or compat.DEFAULT_VERSIONS,
        timedelta(seconds=args.check_timeout),
        settings.start_timeout,
        Console(),
        keep=args.keep,
        details=args.details,
    )
    return 0 if ok else 1
