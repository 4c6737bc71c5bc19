"""`sagas dev kafka compat`: how outcomes are collected and shown (no broker needed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from rich.console import Console

from sagas.dev import compat
from sagas.dev.compat_checks import Check, CheckContext, CheckFailed
from sagas.ops.cli import build_parser

# A line the 3.9.2 broker wrote when a client sent ListOffsets v0 (removed in 4.0).
DEPRECATED_LINE = (
    '[2026-11-29 10:04:52,914] INFO Completed request:{"isForwarded":false,"requestHeader":'
    '{"requestApiKey":2,"requestApiVersion":0,"correlationId":2,"clientId":"aiokafka-0.14.0",'
    '"requestApiKeyName":"LIST_OFFSETS","requestApiVersionDeprecated":true},"request":'
    '{"replicaId":-1,"topics":[]}} (kafka.request.logger)'
)


async def _passes(ctx: CheckContext) -> str:
    return "fine"


async def _fails(ctx: CheckContext) -> str:
    raise CheckFailed("read back [b'x']")


async def _hangs(ctx: CheckContext) -> str:
    ctx.step("waiting for the group to settle")
    await asyncio.Event().wait()
    return "unreachable"


async def test_run_checks_reports_errors_and_deadlines(tmp_path: Path) -> None:
    checks = [Check("a", _passes), Check("b", _fails), Check("c", _hangs)]
    ctx = CheckContext("127.0.0.1:1", tmp_path)
    outcomes = await compat.run_checks(ctx, "4.4.0", checks, timedelta(seconds=0.05))
    assert [(o.check, o.ok) for o in outcomes] == [("a", True), ("b", False), ("c", False)]
    assert outcomes[1].detail == "CheckFailed: read back [b'x']"
    assert outcomes[2].detail == "no result within 0.05 s while waiting for the group to settle"


def test_deprecated_requests_counts_only_deprecated_versions() -> None:
    current = DEPRECATED_LINE.replace('"requestApiVersionDeprecated":true', "")
    log = "\n".join([DEPRECATED_LINE, DEPRECATED_LINE, current, "INFO Kafka Server started"])
    assert compat.deprecated_requests(log) == {"LIST_OFFSETS v0": 2}


def test_table_shows_ok_and_the_exact_error() -> None:
    reports = [
        compat.VersionReport(
            "3.9.2", [compat.Outcome("idempotent producer", "3.9.2", True, "20", 0.4)], None
        ),
        compat.VersionReport(
            "4.4.0",
            [compat.Outcome("idempotent producer", "4.4.0", False, "KafkaError: boom", 1.0)],
            Path("/tmp/x"),
        ),
    ]
    console = Console(record=True, width=200)
    console.print(compat.render(reports, details=False))
    text = console.export_text()
    assert "Kafka 3.9.2" in text
    assert "ok 0.4 s" in text
    assert "FAILED: KafkaError: boom" in text


def test_cli_takes_several_versions() -> None:
    args = build_parser().parse_args(
        ["dev", "kafka", "compat", "--version", "3.9.2", "--version", "4.4.0"]
    )
    assert args.versions == ["3.9.2", "4.4.0"]
    assert args.check_timeout == 60.0


def test_default_versions_include_the_pin() -> None:
    from sagas.settings import DEFAULT_KAFKA_VERSION

    assert DEFAULT_KAFKA_VERSION in compat.DEFAULT_VERSIONS
