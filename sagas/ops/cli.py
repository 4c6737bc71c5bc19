"""The `sagas` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from sagas.errors import SagasError

Handler = Callable[[argparse.Namespace], int]


def _add_dev(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import dev_commands

    dev = sub.add_parser("dev", help="local development infrastructure")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)
    kafka = dev_sub.add_parser("kafka", help="the local single-node Apache Kafka broker")
    kafka_sub = kafka.add_subparsers(dest="kafka_command", required=True)
    kafka_sub.add_parser("fetch", help="download the broker jars with Maven").set_defaults(
        handler=dev_commands.kafka_fetch
    )
    for name, text, handler in (
        ("start", "start the broker (no-op if running)", dev_commands.kafka_start),
        ("stop", "stop the broker this tool started", dev_commands.kafka_stop),
        ("status", "say whether it runs, and where", dev_commands.kafka_status),
    ):
        command = kafka_sub.add_parser(name, help=text)
        command.add_argument(
            "--secure",
            action="store_true",
            help="the secure broker: SASL_SSL, SCRAM users and ACLs per component, mutual "
            "TLS (docs/security.md); also SAGAS_DEV_KAFKA_SECURE=true",
        )
        command.set_defaults(handler=handler)
    logs = kafka_sub.add_parser("logs", help="print the end of the broker log")
    logs.add_argument("-n", "--lines", type=int, default=50, help="how many lines")
    logs.set_defaults(handler=dev_commands.kafka_logs)
    compat = kafka_sub.add_parser(
        "compat",
        help="check aiokafka and faust-streaming against throwaway brokers of given versions",
    )
    compat.add_argument(
        "--version",
        dest="versions",
        action="append",
        metavar="V",
        help="Apache Kafka release to check (repeatable; default: 3.9.2 and the pinned one)",
    )
    compat.add_argument(
        "--check-timeout", type=float, default=60.0, metavar="S", help="deadline of each check"
    )
    compat.add_argument("--keep", action="store_true", help="keep the temporary folders")
    compat.add_argument("-v", "--details", action="store_true", help="notes in the ok cells")
    compat.set_defaults(handler=dev_commands.kafka_compat)


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import demo

    demo.add_parser(sub)


def _add_chaos(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.chaos import command

    command.add_parser(sub)


def _add_check(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import check_command

    check_command.add_parser(sub)


def _add_codegen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import codegen_command

    codegen_command.add_parser(sub)


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import run_command

    run_command.add_parser(sub)


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.bench import command

    command.add_parser(sub)


def _add_ops(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import commands

    commands.add_parsers(sub)


# `sagas codegen` writes the message package that registering every other command
# imports, so it must run while that package is missing or broken: alone, it is
# parsed without registering the others.
_STANDALONE = {"codegen": _add_codegen}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; of ``command`` alone when it is a standalone one."""
    parser = argparse.ArgumentParser(
        prog="sagas", description="Event-driven sagas on Apache Kafka."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    if command in _STANDALONE:
        _STANDALONE[command](sub)
        return parser
    _add_dev(sub)
    _add_demo(sub)
    _add_chaos(sub)
    _add_check(sub)
    _add_codegen(sub)
    _add_run(sub)
    _add_bench(sub)
    _add_ops(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sagas` console script."""
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words[0] if words else None).parse_args(words)
    handler: Handler = args.handler
    try:
        return handler(args)
    except SagasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
