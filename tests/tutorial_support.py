"""docs/tutorial.md, done as its reader does it: blocks written, commands typed, in order.

A fenced block right under a line naming a file (`` `signup/saga.py` ``) is that file,
written as shown, relative to the folder the reader is in; under
`` `signup/saga.py` (continued) `` it is the next part of it (after two blank lines);
under `` `signup/messages/billing.py` (generated) `` it is an excerpt of a file
`sagas codegen` wrote, which must be in it. ``$ `` lines of ``console`` blocks are the
commands the reader types, run by `Reader` with bash:

- ``cd DIR`` and ``export NAME=VALUE`` change the folder and the environment of the
  commands after them, as in the reader's shell;
- ``COMMAND &`` starts a process in the background (`Processes`), ``kill %1 %2 ...``
  stops those (SIGTERM, by pid);
- any other command must exit 0.

A test may give the reader a broker: ``export KAFKA_BOOTSTRAP_SERVERS=...`` then keeps
that broker's address, and every command gets a topic prefix and group names of its own
(the only changes to what the reader types).
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.project_support import REPO, Processes, environment

TUTORIAL = REPO / "docs" / "tutorial.md"

_BLOCK = re.compile(
    r"^(?:## (?P<heading>[^\n]+)$)|"
    r"^(?:`(?P<title>[\w./-]+)`(?: \((?P<mark>continued|generated)\))?\n)?"
    r"```(?P<lang>[\w-]+)\n(?P<body>.*?)^```$",
    re.MULTILINE | re.DOTALL,
)


@dataclass(frozen=True)
class Block:
    """A fenced block of the tutorial, with the section it is in.

    Attributes:
        section: the ``## `` heading above it.
        lang: the fence's language (``python``, ``json``, ``console``, ``text``...).
        body: its text.
        title: the file it is, if it names one.
        mark: ``continued`` or ``generated`` after the file name, if any.
    """

    section: str
    lang: str
    body: str
    title: str | None = None
    mark: str | None = None

    def commands(self) -> list[str]:
        """The ``$ `` lines of a console block, without the ``$ ``."""
        if self.lang != "console":
            return []
        return [line[2:] for line in self.body.splitlines() if line.startswith("$ ")]


def markdown() -> str:
    return TUTORIAL.read_text(encoding="utf-8")


def blocks(text: str | None = None) -> list[Block]:
    """Every fenced block, in order."""
    found: list[Block] = []
    section = ""
    for match in _BLOCK.finditer(markdown() if text is None else text):
        if match["heading"] is not None:
            section = match["heading"]
            continue
        found.append(Block(section, match["lang"], match["body"], match["title"], match["mark"]))
    return found


def files(text: str | None = None) -> dict[str, str]:
    """Every file the reader writes, by path, its parts joined."""
    found: dict[str, str] = {}
    for block in blocks(text):
        if block.title is None or block.mark == "generated":
            continue
        assert (block.title in found) == (block.mark == "continued"), block.title
        previous = found.get(block.title)
        found[block.title] = block.body if previous is None else previous + "\n\n" + block.body
    return found


def commands(text: str | None = None) -> list[str]:
    """Every command the reader types, in order."""
    return [command for block in blocks(text) for command in block.commands()]


def uncaptioned(text: str | None = None) -> list[str]:
    """The first line of every block of code that is neither a file nor commands (nor
    output or a diagram), so would not be run."""
    return [
        block.body.partition("\n")[0]
        for block in blocks(text)
        if block.title is None and block.lang not in ("console", "text", "mermaid")
    ]


def tests_in(path: str) -> list[str]:
    """The names of the test functions in one of the tutorial's files."""
    return re.findall(r"^(?:async )?def (test_\w+)", files()[path], re.MULTILINE)


Hook = Callable[["Reader"], None]


@dataclass
class Reader:
    """Follows the tutorial in ``home``, with the ``sagas``, ``python`` and ``pytest`` of
    ``bin_dir`` first on the ``PATH``.

    Attributes:
        outputs: each command typed and what it printed (stdout), in order.
    """

    home: Path
    bin_dir: Path
    processes: Processes
    env: dict[str, str] = field(default_factory=dict)
    broker: str | None = None
    outputs: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.cwd = self.home
        path = environment().get("PATH", "")
        # COLUMNS: a wide terminal, so that rich does not wrap what a test looks for
        self.env = {"PATH": f"{self.bin_dir}:{path}", "COLUMNS": "200", **self.env}
        if self.broker is not None:
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = self.broker

    def follow(
        self,
        text: str | None = None,
        *,
        stop_at: str | None = None,
        before: Mapping[str, Hook] | None = None,
    ) -> None:
        """Do every block in order, up to the section whose heading starts with
        ``stop_at``; ``before[command]`` runs just before that command is typed."""
        for block in blocks(text):
            if stop_at is not None and block.section.startswith(stop_at):
                return
            if block.title is not None:
                self.write(block)
            for command in block.commands():
                hook = (before or {}).get(command)
                if hook is not None:
                    hook(self)
                self.type(command)

    def write(self, block: Block) -> None:
        assert block.title is not None
        path = (self.cwd / block.title).resolve()
        assert path.is_relative_to(self.home.resolve()), block.title
        if block.mark == "generated":
            assert block.body in path.read_text(encoding="utf-8"), f"{block.title} differs"
        elif block.mark == "continued":
            path.write_text(path.read_text(encoding="utf-8") + "\n\n" + block.body)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.body, encoding="utf-8")

    def type(self, command: str) -> None:
        words = shlex.split(command)
        if words[0] == "cd":
            self.cwd = (self.cwd / words[1]).resolve()
        elif words[0] == "export":
            name, _, value = words[1].partition("=")
            keep = name == "KAFKA_BOOTSTRAP_SERVERS" and self.broker is not None
            self.env[name] = self.env[name] if keep else value
        elif words[-1] == "&":
            name = f"{len(self.processes.started) + 1}-{'-'.join(words[:-1])}"
            self.processes.start(
                name, ["bash", "-c", "exec " + command[:-1]], self.cwd, env=self.env
            )
        elif words[0] == "kill" and all(w.startswith("%") for w in words[1:]):
            codes = self.processes.stop()
            assert set(codes.values()) == {0}, codes
        else:
            self.outputs.append((command, self.run(command)))

    def run(self, command: str) -> str:
        """Run ``command`` where the reader is; its output (it must succeed)."""
        done = subprocess.run(
            ["bash", "-c", command],
            cwd=self.cwd,
            env=environment(self.env),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, (
            f"$ {command} (in {self.cwd}) exited {done.returncode}\n"
            f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
        return done.stdout

    def output(self, command: str) -> str:
        """What ``command`` printed the last time it was typed."""
        return next(out for typed, out in reversed(self.outputs) if typed == command)
