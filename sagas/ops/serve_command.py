"""`sagas serve NAME`: run one of the app's participant services as this process."""

from __future__ import annotations

import argparse

from sagas.app import load_app
from sagas.participant.main import serve


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve_parser = sub.add_parser(
        "serve", help="run one of the app's participant services until SIGTERM or SIGINT"
    )
    serve_parser.add_argument("name", metavar="NAME", help="the participant's name")
    serve_parser.set_defaults(handler=main)


def main(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    serve(app.participant(args.name), app)
    return 0
