"""Python source text in the shape `ruff format` (line length 100) and ruff's isort keep.

`sagas.contracts.codegen` writes modules that must pass ``ruff format --check`` and
``ruff check`` as they are. This module holds the few shapes it needs: literals,
docstrings, ``from`` imports, and an assignment whose value may have to be split over
several lines the way ruff splits it.
"""

from __future__ import annotations

import inspect
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

LINE = 100
INDENT = "    "


@dataclass(frozen=True)
class Bracketed:
    """An expression ruff may split inside its brackets: a call or a tuple.

    Attributes:
        opener: the text up to and including the opening bracket, e.g. ``Decimal(`` or ``(``.
        items: the arguments or items, each an atom (a ``str``) or another `Bracketed`.
        is_tuple: a tuple (split one item per line; a single item keeps its comma).
    """

    opener: str
    items: tuple[Expr, ...]
    is_tuple: bool = False


Expr = str | Bracketed


def flat(expr: Expr) -> str:
    """The expression on one line."""
    if isinstance(expr, str):
        return expr
    inner = ", ".join(flat(item) for item in expr.items)
    if expr.is_tuple and len(expr.items) == 1:
        inner += ","
    return f"{expr.opener}{inner})"


def layout(indent: str, head: str, expr: Expr, tail: str = "") -> list[str]:
    """``head``, ``expr`` and ``tail`` at ``indent``, split as ruff splits an over-long line.

    A tuple goes one item per line with a trailing comma; a call first tries its
    arguments on one indented line; an atom assigned to a name (``head`` ends with
    ``= ``) is put in parentheses on a line of its own when that makes it fit.
    """
    line = indent + head + flat(expr) + tail
    if len(line) <= LINE:
        return [line]
    inner = indent + INDENT
    if isinstance(expr, str):
        if head.endswith("= ") and len(inner + expr) <= LINE:
            return [indent + head + "(", inner + expr, indent + ")" + tail]
        return [line]
    if not expr.is_tuple:
        arguments = inner + ", ".join(flat(item) for item in expr.items)
        if len(arguments) <= LINE:
            return [indent + head + expr.opener, arguments, indent + ")" + tail]
    lines = [indent + head + expr.opener]
    for item in expr.items:
        lines += layout(inner, "", item, ",")
    return [*lines, indent + ")" + tail]


def str_literal(text: str) -> str:
    """A string literal with the quotes ruff prefers (double, unless that needs more escapes)."""
    quote = "'" if text.count('"') > text.count("'") else '"'
    return quote + "".join(_char(c, quote) for c in text) + quote


def bytes_literal(data: bytes) -> str:
    """A bytes literal: printable ASCII as is, every other byte as ``\\xNN``."""
    quote = "'" if data.count(b'"') > data.count(b"'") else '"'
    body = "".join(
        _char(chr(byte), quote) if 32 <= byte < 127 else f"\\x{byte:02x}" for byte in data
    )
    return f"b{quote}{body}{quote}"


def float_literal(value: float) -> str:
    """A float literal as ruff writes it (``1e20``, not ``1e+20``)."""
    return repr(value).replace("e+", "e")


def _char(char: str, quote: str) -> str:
    if char in ("\\", quote):
        return "\\" + char
    if char.isprintable():
        return char
    return repr(char)[1:-1]


def docstring(indent: str, text: str, attributes: Sequence[tuple[str, str]] = ()) -> list[str]:
    """A Google-style docstring: ``text``, then an ``Attributes:`` section if given.

    ``text`` is cleaned like a docstring (`inspect.cleandoc`), wrapped at spaces to the
    line length, and escaped (backslashes, triple quotes, control characters, a quote
    next to the delimiters).
    """
    width = LINE - len(indent)
    body = _wrap(text, width, first='"""')
    body[0] = body[0].removeprefix('"""')
    if attributes:
        body += ["", "Attributes:"]
        for name, doc in attributes:
            body += _wrap(doc, width, first=f"{INDENT}{name}: ", rest=INDENT * 2)
    if body[0].startswith('"'):
        body[0] = "\\" + body[0]
    if len(body) == 1:
        single = body[0]
        if single.endswith('"') and not _escaped_end(single):
            single = single[:-1] + '\\"'
        if len(indent + '"""' + single + '"""') <= LINE:
            return [indent + '"""' + single + '"""']
    lines = [indent + '"""' + body[0]]
    lines += [indent + line if line else "" for line in body[1:]]
    return [*lines, indent + '"""']


def _wrap(text: str, width: int, first: str, rest: str = "") -> list[str]:
    """The lines of ``text``, the first starting with ``first``, the others with ``rest``
    (plus their own indentation, kept); at least one line."""
    lines: list[str] = []
    for source in inspect.cleandoc(text).splitlines():
        escaped = _escape(source.rstrip())
        if not escaped:
            if lines and lines[-1]:
                lines.append("")
            continue
        body = escaped.lstrip()
        lead = rest + escaped[: len(escaped) - len(body)]
        lines += textwrap.wrap(
            body,
            width,
            initial_indent=lead if lines else first,
            subsequent_indent=lead,
            break_long_words=False,
            break_on_hyphens=False,
        )
    return lines or [first]


def _escape(line: str) -> str:
    out = ["\\\\" if c == "\\" else c if c.isprintable() else repr(c)[1:-1] for c in line]
    return "".join(out).replace('"""', '\\"\\"\\"')


def _escaped_end(text: str) -> bool:
    """Whether the last character of ``text`` is escaped by an odd run of backslashes."""
    run = len(text[:-1]) - len(text[:-1].rstrip("\\"))
    return run % 2 == 1


def import_from(module: str, names: Iterable[str]) -> list[str]:
    """``from module import names`` sorted as ruff's isort sorts them, wrapped if too long."""
    ordered = sorted(set(names), key=_member_key)
    line = f"from {module} import {', '.join(ordered)}"
    if len(line) <= LINE:
        return [line]
    return [f"from {module} import (", *(f"{INDENT}{name}," for name in ordered), ")"]


def _member_key(name: str) -> tuple[int, str, str]:
    """isort's order-by-type: CONSTANTS, then Classes, then everything else."""
    if name.isupper() and len(name) > 1:
        rank = 0
    elif name[:1].isupper():
        rank = 1
    else:
        rank = 2
    return rank, name.lower(), name
