"""The operations subcommands of `sagas`: list, show, stuck and stats (`query`); the
operator actions retry, abort, resume, pause, unpause, retry-now and skip (`act`);
diagram, dlq and web. Each module adds its parsers with ``add_parsers(sub)``.

Each of them first looks for a running ``sagas demo --keep``'s settings in
``.sagas/demo.env`` (`sagas.ops.demo_env`), used when none of its variables is set.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from sagas.ops.demo_env import apply_demo_env

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]

Handler = Callable[[argparse.Namespace], int]


def add_parsers(sub: Sub) -> None:
    """Register every operations subcommand."""
    from sagas.ops.commands import act, diagram, dlq, query, web

    before = set(sub.choices)
    query.add_parsers(sub)
    act.add_parsers(sub)
    diagram.add_parsers(sub)
    dlq.add_parsers(sub)
    web.add_parsers(sub)
    for name in sorted(set(sub.choices) - before):
        _demo_aware(sub.choices[name])


def _demo_aware(parser: argparse.ArgumentParser) -> None:
    """Make ``parser``'s handler (and its subcommands') read a running demo's settings."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for inner in action.choices.values():
                _demo_aware(inner)
    handler = parser.get_default("handler")
    if handler is not None:
        parser.set_defaults(handler=with_demo_env(handler))


def with_demo_env(handler: Handler) -> Handler:
    """``handler``, run after `apply_demo_env` (its note goes to stderr)."""

    def run(args: argparse.Namespace) -> int:
        note = apply_demo_env()
        if note is not None:
            print(note, file=sys.stderr)
        return handler(args)

    return run
