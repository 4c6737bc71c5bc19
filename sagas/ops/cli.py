"""The `sagas` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from pydantic import ValidationError

from sagas.app import app_spec
from sagas.errors import SagasError
from sagas.project import find_project
from sagas.settings import settings_problem

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


def _examples_only(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, text: str
) -> Callable[[BaseException], None]:
    """Register ``name`` as a command that explains why it cannot run here."""

    def register(exc: BaseException) -> None:
        def explain(args: argparse.Namespace) -> int:
            print(
                f"error: sagas {name} drives the example app of the kafka-sagas repository "
                f"(services/, not part of the installed package: {exc}); run it from a "
                "checkout, e.g. `make demo`",
                file=sys.stderr,
            )
            return 2

        sub.add_parser(name, help=text + " (in a checkout of the repository)").set_defaults(
            handler=explain
        )

    return register


def _add_demo(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from sagas.ops import demo
    except ModuleNotFoundError as exc:
        if not _is_examples(exc):
            raise
        _examples_only(sub, "demo", "run the example system end to end")(exc)
        return
    demo.add_parser(sub)


def _add_load(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from sagas.ops.demo import load
    except ModuleNotFoundError as exc:
        if not _is_examples(exc):
            raise
        _examples_only(sub, "load", "place the example workload on a running system")(exc)
        return
    load.add_parser(sub)


def _add_chaos(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from sagas.chaos import command
    except ModuleNotFoundError as exc:
        if not _is_examples(exc):
            raise
        _examples_only(sub, "chaos", "the example sagas under faults")(exc)
        return
    command.add_parser(sub)


def _is_examples(exc: ModuleNotFoundError) -> bool:
    """Whether ``exc`` is the example app (``services``) missing: a wheel install."""
    return exc.name is not None and exc.name.split(".")[0] == "services"


def _add_check(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import check_command

    check_command.add_parser(sub)


def _add_codegen(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import codegen_command

    codegen_command.add_parser(sub)


def _add_init(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import init_command

    init_command.add_parser(sub)


def _add_run(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import run_command

    run_command.add_parser(sub)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import serve_command

    serve_command.add_parser(sub)


def _add_bench(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    try:
        from sagas.bench import command
    except ModuleNotFoundError as exc:
        if not _is_examples(exc):
            raise
        _examples_only(sub, "bench", "benchmark the example order saga")(exc)
        return
    command.add_parser(sub)


def _add_ops(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from sagas.ops import commands

    commands.add_parsers(sub)


# `sagas codegen` writes the message package that registering every other command
# imports, so it must run while that package is missing or broken: alone, it is
# parsed without registering the others. `sagas init` needs no project at all.
_STANDALONE = {"codegen": _add_codegen, "init": _add_init}


APP_HELP = (
    "the project's sagas.App as package.module:attribute (default: the SAGAS_APP variable, "
    "else [tool.sagas] app in the nearest pyproject.toml)"
)

# Commands that work without an app: the dev broker, code generation, scaffolding.
_NO_APP = {"dev", "codegen", "init"}

EXAMPLES_APP = "services.app:app"
"""The shipped examples' app (``services.app.SPEC``; not imported: a wheel has no
``services``)."""

# Commands that drive the shipped example system: its workloads, seed data and expected
# outcomes, which another app does not have. They take --app like every command, and
# refuse any app but the examples rather than run the examples anyway.
_EXAMPLES_ONLY = {"demo", "load", "chaos", "bench"}

EXAMPLES_APP_HELP = (
    f"only the shipped examples ({EXAMPLES_APP}) are accepted: this command runs them; "
    "for your own app, use `sagas run` and `sagas serve NAME`"
)


def _refusal(args: argparse.Namespace) -> str | None:
    """Why ``args`` cannot run: an examples-only command pointed at another app."""
    if args.command not in _EXAMPLES_ONLY:
        return None
    named = app_spec(args.app)
    if named is None or named.qualified == EXAMPLES_APP:
        return None
    return (
        f"sagas {args.command} runs the shipped examples ({EXAMPLES_APP}), not "
        f"{named.spec} (from {named.origin}); for your own app, run the engine with "
        "`sagas run` and each participant with `sagas serve NAME`"
    )


def _app_options(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``--app`` on every command that uses the app, wherever it is given."""
    for name, command in sub.choices.items():
        if name in _NO_APP:
            continue
        nested = [a for a in command._actions if isinstance(a, argparse._SubParsersAction)]
        for inner in nested:
            _app_options(inner)
        if not nested:
            # SUPPRESS: not given here, the top-level `sagas --app X` value stands.
            text = EXAMPLES_APP_HELP if name in _EXAMPLES_ONLY else APP_HELP
            command.add_argument("--app", default=argparse.SUPPRESS, help=text)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command; of ``command`` alone when it is a standalone one."""
    parser = argparse.ArgumentParser(
        prog="sagas", description="Event-driven sagas on Apache Kafka."
    )
    parser.add_argument("--app", default=None, help=APP_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    if command in _STANDALONE:
        _STANDALONE[command](sub)
        return parser
    _add_dev(sub)
    _add_demo(sub)
    _add_load(sub)
    _add_chaos(sub)
    _add_check(sub)
    _add_codegen(sub)
    _add_init(sub)
    _add_run(sub)
    _add_serve(sub)
    _add_bench(sub)
    _add_ops(sub)
    _app_options(sub)
    return parser


def _project_importable() -> None:
    """Put the nearest ``[tool.sagas]`` project's folder on ``sys.path`` (as ``python -m``
    run there would), so its packages import without being installed."""
    try:
        project = find_project()
    except SagasError:
        return  # reported by the command that needs the project
    if project is not None and str(project.root) not in sys.path:
        sys.path.insert(0, str(project.root))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `sagas` console script."""
    _project_importable()
    words = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(words[0] if words else None).parse_args(words)
    handler: Handler = args.handler
    try:
        refusal = _refusal(args)
        if refusal is not None:
            print(f"error: {refusal}", file=sys.stderr)
            return 2
        return handler(args)
    except SagasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ValidationError as exc:
        # Settings built straight from the environment by a command: the same one line
        # as a ConfigurationError, not a traceback.
        problem = settings_problem(exc)
        if problem is None:
            raise
        print(f"error: {problem}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
