"""`sagas web`: the dashboard on 127.0.0.1:8080 unless told otherwise."""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def add_parsers(sub: Sub) -> None:
    p = sub.add_parser("web", help="serve the operations dashboard (and its JSON API)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port (8080)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from sagas.app import load_app
    from sagas.ops.web import WebConfig, serve

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    config = WebConfig.from_env(load_app(args.app))
    print(
        f"dashboard on http://{args.host}:{args.port} "
        f"({'read-only' if config.admin_token is None else 'actions need the admin token'})",
        file=sys.stderr,
    )
    serve(config, args.host, args.port)
    return 0
