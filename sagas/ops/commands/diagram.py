"""`sagas diagram SAGA`: the definition as Mermaid text and as an SVG file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from sagas.app import load_app
from sagas.ops.errors import NotFoundError
from sagas.ops.views.diagram import diagram, mermaid
from sagas.ops.views.svg import diagram_svg

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def add_parsers(sub: Sub) -> None:
    p = sub.add_parser("diagram", help="draw a saga definition (Mermaid text, SVG file)")
    p.add_argument("saga", metavar="SAGA", help="the saga type")
    p.add_argument("--svg", type=Path, metavar="FILE", help="also write the SVG drawing here")
    p.add_argument("--format", choices=("mermaid", "svg"), default="mermaid", help="what to print")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    known = load_app(args.app).latest
    definition = known.get(args.saga)
    if definition is None:
        raise NotFoundError(f"no saga definition {args.saga!r}; known: {', '.join(sorted(known))}")
    model = diagram(definition)
    svg = diagram_svg(model)
    if args.svg:
        args.svg.write_text(svg)
    print(svg if args.format == "svg" else mermaid(model), end="")
    return 0
