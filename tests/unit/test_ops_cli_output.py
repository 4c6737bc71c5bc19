"""The CLI's output pieces at a fixed width, and what lets it find a running demo."""

from __future__ import annotations

import argparse
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.table import Table

from sagas.ops.commands import with_demo_env
from sagas.ops.commands.query import print_view, short_time
from sagas.ops.demo.command import cli_lines, healthy, summary_printer
from sagas.ops.demo.run import live_table
from sagas.ops.demo.summary import render as render_summary
from sagas.ops.demo_env import (
    VARIABLES,
    apply_demo_env,
    demo_variables,
    paste_lines,
    remove_demo_env,
    write_demo_env,
)
from sagas.ops.views.timeline import instance_view
from tests.unit.test_ops_views import compensated_body

TIME = re.compile(r"\d\d:\d\d:\d\d\.\d\d\d")


def render(width: int, terminal: bool = False) -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=terminal, color_system=None)
    return console, buffer


# -- sagas show ----------------------------------------------------------------------


def test_show_in_80_columns_keeps_every_time_on_one_line() -> None:
    view = instance_view(compensated_body())
    console, buffer = render(80)
    print_view(view, console)
    text = buffer.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 80
    times = [short_time(s["started"], None)[-12:] for s in view["steps"]]
    times += [short_time(e["at"], None)[-12:] for e in view["history"]]
    for moment in times:
        assert moment in text  # whole: never folded over lines
    assert "payments.PaymentDeclined received" in text  # errors listed under the table
    header = next(line for line in text.splitlines() if "took" in line)
    assert "end" not in header.split()  # dropped under 100 columns


def test_show_wide_has_end_and_error_columns() -> None:
    console, buffer = render(140)
    print_view(instance_view(compensated_body()), console)
    header = next(line for line in buffer.getvalue().splitlines() if "took" in line)
    assert "end" in header
    assert "error" in header


def test_short_time_shows_the_date_only_off_the_saga_s_day() -> None:
    from datetime import date

    assert short_time("2030-01-01T12:00:01.234567+00:00", date(2030, 1, 1)) == "12:00:01.234"
    assert short_time("2030-01-02T00:00:00Z", date(2030, 1, 1)) == "2030-01-02 00:00:00.000"
    assert short_time(None, None) == ""


# -- sagas demo ----------------------------------------------------------------------


def _table() -> Table:
    table = Table(title="Sagas by state")
    table.add_column("saga")
    table.add_row("order_fulfilment")
    return table


@pytest.mark.parametrize("terminal", [False, True])
def test_the_live_table_ends_its_last_line(terminal: bool) -> None:
    console, buffer = render(60, terminal)
    with live_table(_table(), console, quiet=False) as live:
        live.update(_table())
    console.print("Sagas")  # the summary's title
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", buffer.getvalue())
    lines = plain.splitlines()
    assert lines[-1].strip() == "Sagas"
    assert lines[-2].rstrip().endswith("┘")


def test_keep_json_prints_the_summary_to_stdout_as_soon_as_it_exists() -> None:
    console, err = render(100)
    stdout = io.StringIO()
    variables = demo_variables("127.0.0.1:9092", "demo1a2b3c.", Path("/w/ops-cli.sqlite3"))
    show = summary_printer(True, console, cli_lines(variables), stdout)
    summary: dict[str, Any] = {"sagas": {}, "invariants": {}, "violations": {}, "logs": "x"}
    show(summary)
    assert json.loads(stdout.getvalue()) == {"sagas": {}, "invariants": {}, "logs": "x"}
    assert "export SAGAS_TOPIC_PREFIX=demo1a2b3c." in err.getvalue()


def test_a_process_that_needed_sigkill_fails_the_demo() -> None:
    summary: dict[str, Any] = {
        "sagas": {},
        "invariants": {"inventory.books_balance": True},
        "stops": {"processes": 11, "unclean": {}},
    }
    console, buffer = render(100)
    render_summary(summary, console)
    assert "11 processes stopped cleanly on SIGTERM" in buffer.getvalue()
    assert healthy(summary)

    summary["stops"]["unclean"] = {"payments": "killed after SIGTERM (1x)"}
    console, buffer = render(100)
    render_summary(summary, console)
    assert "not stopped cleanly on SIGTERM: payments: killed after SIGTERM (1x)" in (
        buffer.getvalue()
    )
    assert not healthy(summary)


def test_the_lines_to_paste_name_everything_the_cli_needs() -> None:
    variables = demo_variables("127.0.0.1:9092", "demo1a2b3c.", Path("/w d/ops-cli.sqlite3"))
    assert set(variables) == set(VARIABLES)
    assert paste_lines(variables) == [
        "export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092",
        "export SAGAS_TOPIC_PREFIX=demo1a2b3c.",
        "export SAGAS_OPS_DB='/w d/ops-cli.sqlite3'",
    ]


def test_the_demo_env_file_is_used_when_nothing_is_set(tmp_path: Path) -> None:
    path = tmp_path / ".sagas" / "demo.env"
    variables = demo_variables("127.0.0.1:9092", "demo1a2b3c.", tmp_path / "o d.sqlite3")
    write_demo_env(variables, os.getpid(), path)
    env: dict[str, str] = {}
    note = apply_demo_env(env, path)
    assert env == variables
    assert note is not None
    assert note.startswith("using the running demo's settings")

    env = {"SAGAS_TOPIC_PREFIX": "mine."}  # the environment wins, whole
    assert "SAGAS_TOPIC_PREFIX is set" in (apply_demo_env(env, path) or "")
    assert env == {"SAGAS_TOPIC_PREFIX": "mine."}

    remove_demo_env(os.getpid() + 1, path)  # not ours: kept
    assert path.exists()
    remove_demo_env(os.getpid(), path)
    assert not path.exists()
    assert apply_demo_env({}, path) is None


def test_a_demo_env_file_of_a_stopped_demo_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "demo.env"
    write_demo_env(demo_variables("h:1", "p.", tmp_path / "o"), 2**22 + 12345, path)
    env: dict[str, str] = {}
    assert "is not running" in (apply_demo_env(env, path) or "")
    assert env == {}


def test_every_operations_command_reads_the_demo_env_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from sagas.ops.cli import build_parser

    monkeypatch.chdir(tmp_path)
    for name in VARIABLES:
        # Set, then removed: monkeypatch restores what was there (or nothing) at the end,
        # whatever `with_demo_env` sets in this process's environment meanwhile.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    write_demo_env(demo_variables("h:1", "demo9.", tmp_path / "o"), os.getpid())
    seen: dict[str, str | None] = {}

    def handler(args: argparse.Namespace) -> int:
        seen.update({name: os.environ.get(name) for name in VARIABLES})
        return 0

    assert with_demo_env(handler)(argparse.Namespace()) == 0
    assert seen["SAGAS_TOPIC_PREFIX"] == "demo9."
    assert "using the running demo's settings from .sagas/demo.env" in capsys.readouterr().err
    for words in (["list"], ["show", "x"], ["dlq", "list"], ["web"], ["pause", "x"]):
        args = build_parser().parse_args(words)
        assert args.handler.__qualname__ == "with_demo_env.<locals>.run", words
