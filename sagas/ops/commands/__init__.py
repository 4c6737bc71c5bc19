"""The operations subcommands of `sagas`: list, show, actions, stuck, stats, diagram,
dlq and web. Each module adds its parsers with ``add_parsers(sub)``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def add_parsers(sub: Sub) -> None:
    """Register every operations subcommand."""
    from sagas.ops.commands import act, diagram, dlq, query, web

    query.add_parsers(sub)
    act.add_parsers(sub)
    diagram.add_parsers(sub)
    dlq.add_parsers(sub)
    web.add_parsers(sub)
