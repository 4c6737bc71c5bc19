"""The README's table of commands names only commands the CLI has, and every one of the
CLI's commands is in it."""

from __future__ import annotations

import argparse
import re

from sagas.ops.cli import EXAMPLES_APP, build_parser
from tests.project_support import REPO


def readme_commands() -> set[str]:
    """The first word after ``sagas`` of each command in the README's commands table
    (``sagas list / show`` names ``list`` and ``show``)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    table = text[text.index("| Command | What it does |") :].split("\n\n", 1)[0]
    found: set[str] = set()
    for cell in re.findall(r"^\| `sagas ([^`]+)`", table, re.MULTILINE):
        first, *others = [part.strip() for part in cell.split(" / ")]
        found.add(first.split()[0])
        found.update(o.split()[0] for o in others if first.split()[0] not in ("dev", "dlq"))
    return found


def cli_commands() -> set[str]:
    [sub] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(sub.choices)


def test_the_readme_lists_every_command_and_only_those() -> None:
    assert readme_commands() == cli_commands()
    assert {"init", "serve", "codegen", "run", "check"} <= readme_commands()


def test_every_command_but_init_codegen_and_dev_takes_app() -> None:
    for words in (["run"], ["serve", "rooms"], ["check"], ["list"], ["dlq", "list"]):
        args = build_parser(words[0]).parse_args([*words, "--app", "hotel.app:app"])
        assert args.app == "hotel.app:app", words
    assert build_parser("init").parse_args(["init", "x"]).app is None


def test_the_examples_commands_take_app_and_the_readme_says_they_refuse_others() -> None:
    # They refuse any app but the examples (tests/unit/test_examples_commands.py).
    for name in ("demo", "load", "chaos", "bench"):
        args = build_parser(name).parse_args([name, "--app", EXAMPLES_APP])
        assert args.app == EXAMPLES_APP, name
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    assert (
        "`demo`, `load`, `chaos` and `bench` run the shipped examples (`services.app:app`" in text
    )
    assert "stop with an error when another app is named" in text
