"""Scan the project's Python sources (ast) for constructs that run or trust foreign data.

Fails on: ``eval`` / ``exec`` calls; ``pickle``, ``marshal``, ``shelve`` (or ``dill``)
imports; ``yaml.load`` / ``load_all`` without a safe loader, ``yaml.unsafe_load``; and SQL
built at run time in an ``execute*`` call: ``%``, ``.format``, or an f-string or ``+`` of
anything but constants (string literals, module constants, local variables only ever
assigned those). Constant strings with ``?`` placeholders pass. A helper that
passes its parameter straight to ``execute`` is checked at its call sites. The few places
that build SQL from the code's own values are listed in `TRUSTED_SQL`, with the reason.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("sagas", "services", "tests")
BANNED_CALLS = {"eval", "exec"}
BANNED_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill"}
SQL_CALLS = {"execute", "executemany", "executescript", "execute_fetchall", "execute_insert"}
SAFE_LOADERS = {"SafeLoader", "CSafeLoader", "BaseLoader"}

TRUSTED_SQL: dict[tuple[str, str], str] = {
    # PRAGMAs take no parameters; the values are an int read from SQLite and a literal.
    ("sagas/chaos/store.py", "_refuse_writes"): "PRAGMA values: an int from SQLite and ON/OFF",
    # The WHERE clause is joined from constant fragments with ? placeholders (`_where`);
    # every value travels as a parameter.
    ("sagas/ops/readmodel/store.py", "select"): "constant clauses from _where, ? parameters",
    ("sagas/ops/readmodel/store.py", "matching"): "constant clauses from _where, ? parameters",
    # Table and key column are constants of the service definition, never input.
    ("sagas/participant/outbox.py", "mark_published"): "table/column: service constants",
    ("sagas/participant/outbox.py", "publish_pending"): "table/column: service constants",
    # The service's own DDL, a constant of its definition, after the framework's.
    ("sagas/participant/store.py", "open"): "DDL: constant of the service definition",
    # The audit reads the services' files; table names and queries are its own constants
    # (_EFFECTS, _ONBOARDING_EFFECTS), never input.
    ("services/audit.py", "read"): "queries from the _EFFECTS / _ONBOARDING_EFFECTS constants",
    # A test dumping its own file: table names read from that file's sqlite_master.
    ("tests/chaos/test_messages.py", "dump_store"): "table names from the test's own file",
}


def _sources() -> Iterator[Path]:
    for folder in SCANNED:
        yield from sorted((ROOT / folder).rglob("*.py"))


Function = ast.FunctionDef | ast.AsyncFunctionDef


def _trusted(node: ast.expr, function: Function | None, seen: frozenset[str] = frozenset()) -> bool:
    """True when ``node`` is SQL made only of the code's own constants.

    Constant strings, module constants (``_ROW``, ``SCHEMA``), ``+`` and f-strings of
    those, and local variables only ever assigned such values. ``%`` and ``.format``
    never pass, nor a function's parameters or anything else.
    """
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.JoinedStr):
        return all(
            _trusted(v.value, function, seen) if isinstance(v, ast.FormattedValue) else True
            for v in node.values
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _trusted(node.left, function, seen) and _trusted(node.right, function, seen)
    if _placeholders(node):
        return True
    if isinstance(node, ast.Name):
        if node.id.lstrip("_").isupper():
            return True  # a module constant, by the house naming convention
        if function is None or node.id in seen:
            return node.id in seen
        values: list[ast.expr | None] = [
            a.value
            for a in ast.walk(function)
            if (isinstance(a, ast.Assign) and any(_names(t, node.id) for t in a.targets))
            or (isinstance(a, ast.AugAssign | ast.AnnAssign) and _names(a.target, node.id))
        ]
        # A loop over a literal tuple or list: each of its items is a value of the name.
        for loop in ast.walk(function):
            if isinstance(loop, ast.For | ast.comprehension) and _names(loop.target, node.id):
                items = loop.iter
                values += items.elts if isinstance(items, ast.Tuple | ast.List) else [None]
        return bool(values) and all(
            v is not None and _trusted(v, function, seen | {node.id}) for v in values
        )
    return False


def _placeholders(node: ast.expr) -> bool:
    """``",".join("?" * n)``: only placeholders, however many."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "join"
        and isinstance(node.func.value, ast.Constant)
        and len(node.args) == 1
        and isinstance(arg := node.args[0], ast.BinOp)
        and isinstance(arg.op, ast.Mult)
        and isinstance(arg.left, ast.Constant)
        and arg.left.value == "?"
    )


def _wrappers(tree: ast.Module) -> dict[str, int]:
    """Functions that pass one of their parameters straight to ``execute*``: by name, the
    index of that parameter (their call sites are checked instead)."""
    found: dict[str, int] = {}
    for function in ast.walk(tree):
        if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        params = [a.arg for a in function.args.args]
        for call in ast.walk(function):
            if (
                isinstance(call, ast.Call)
                and isinstance(call.func, ast.Attribute)
                and call.func.attr in SQL_CALLS
                and call.args
                and isinstance(call.args[0], ast.Name)
                and call.args[0].id in params
            ):
                found[function.name] = params.index(call.args[0].id)
    return found


def _names(target: ast.expr, name: str) -> bool:
    return isinstance(target, ast.Name) and target.id == name


class _Scanner(ast.NodeVisitor):
    def __init__(self, path: str, wrappers: dict[str, int] | None = None) -> None:
        self.path = path
        self.wrappers = wrappers or {}
        self.problems: list[str] = []
        self._functions: list[Function] = []

    def _flag(self, node: ast.AST, what: str) -> None:
        self.problems.append(f"{self.path}:{getattr(node, 'lineno', 0)}: {what}")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self._functions.append(node)
        self.generic_visit(node)
        self._functions.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self._functions.append(node)
        self.generic_visit(node)
        self._functions.pop()

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name.split(".")[0] in BANNED_MODULES:
                self._flag(node, f"import {alias.name}")
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.module and node.module.split(".")[0] in BANNED_MODULES:
            self._flag(node, f"from {node.module} import")
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in BANNED_CALLS:
            self._flag(node, f"{func.id}() call")
        if isinstance(func, ast.Name) and func.id in self.wrappers:
            index = self.wrappers[func.id]
            if len(node.args) > index:
                self._sql(node, node.args[index])
        if isinstance(func, ast.Attribute):
            self._yaml(node, func)
            if func.attr in SQL_CALLS and node.args:
                self._sql(node, node.args[0])
        self.generic_visit(node)

    def _yaml(self, node: ast.Call, func: ast.Attribute) -> None:
        owner = func.value
        if not (isinstance(owner, ast.Name) and owner.id == "yaml"):
            return
        if func.attr in ("unsafe_load", "unsafe_load_all", "full_load", "full_load_all"):
            self._flag(node, f"yaml.{func.attr}")
        if func.attr in ("load", "load_all"):
            loader = next((k.value for k in node.keywords if k.arg == "Loader"), None)
            if loader is None and len(node.args) > 1:
                loader = node.args[1]
            name = loader.attr if isinstance(loader, ast.Attribute) else None
            name = loader.id if isinstance(loader, ast.Name) else name
            if name not in SAFE_LOADERS:
                self._flag(node, f"yaml.{func.attr} without a safe Loader")

    def _sql(self, node: ast.Call, sql: ast.expr) -> None:
        function = self._functions[-1] if self._functions else None
        name = function.name if function else "<module>"
        if (self.path, name) in TRUSTED_SQL:
            return
        if isinstance(sql, ast.Name) and name in self.wrappers:
            return  # a wrapper: each call site is checked
        if not _trusted(sql, function):
            self._flag(node, f"SQL built at run time in {name}()")


def scan(path: Path) -> list[str]:
    """The problems found in one file."""
    relative = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=relative)
    scanner = _Scanner(relative, _wrappers(tree))
    scanner.visit(tree)
    return scanner.problems


def test_no_source_runs_or_unpickles_foreign_data_or_builds_sql() -> None:
    problems = [p for path in _sources() for p in scan(path)]
    assert problems == []


def test_every_trusted_sql_site_still_exists() -> None:
    # An entry whose function is gone would silently allow a new function of that name.
    for path, function in TRUSTED_SQL:
        tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
        names = {
            n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        }
        assert function in names, (path, function)


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("eval('1')", "eval() call"),
        ("exec(code)", "exec() call"),
        ("import pickle", "import pickle"),
        ("from marshal import loads", "from marshal import"),
        ("import shelve as s", "import shelve"),
        ("yaml.load(text)", "yaml.load without a safe Loader"),
        ("yaml.load(text, Loader=yaml.Loader)", "yaml.load without a safe Loader"),
        ("yaml.unsafe_load(text)", "yaml.unsafe_load"),
        ("def f(db, t):\n    db.execute(f'SELECT * FROM {t}')", "SQL built at run time"),
        ("def f(db, t):\n    db.execute('SELECT %s' % t)", "SQL built at run time"),
        ("def f(db, t):\n    db.executemany('SELECT {}'.format(t), [])", "SQL built at run time"),
        ("def f(db, t):\n    q = 'SELECT ' + t\n    db.execute(q)", "SQL built at run time"),
        ("def one(db, sql):\n    db.execute(sql)\none(db, f'SELECT {t}')", "SQL built"),
        ("def f(c, ts):\n    for t in ts:\n        c.execute(f'SELECT * FROM {t}')", "SQL built"),
        (
            "def f(db, t):\n    q = 'SELECT 1'\n    q += t\n    db.execute(q)",
            "SQL built at run time",
        ),
    ],
)
def test_the_scanner_finds(tmp_path: Path, source: str, found: str) -> None:
    tree = ast.parse(source)
    scanner = _Scanner("example.py", _wrappers(tree))
    scanner.visit(tree)
    assert len(scanner.problems) == 1
    assert found in scanner.problems[0]


@pytest.mark.parametrize(
    "source",
    [
        "yaml.safe_load(text)",
        "yaml.load(text, Loader=yaml.SafeLoader)",
        "def f(db, k):\n    db.execute('SELECT * FROM t WHERE k = ?', (k,))",
        "def f(db):\n    db.execute('SELECT a ' + 'FROM t')",
        "def f(db, k):\n    q = 'SELECT 1'\n    db.execute(q, (k,))",
        "def f(db):\n    q = f'SELECT {_ROW} FROM t'\n    q += ' WHERE k = ?'\n    db.execute(q)",
        "def f(db, n):\n    marks = ','.join('?' * n)\n    db.execute(f'SELECT 1 IN ({marks})')",
        "def one(db, sql):\n    db.execute(sql)\none(db, 'SELECT 1')",
        "def f(c):\n    return [c.execute(f'SELECT * FROM {t}') for t in ('a', 'b')]",
        "model.eval",
    ],
)
def test_the_scanner_passes(source: str) -> None:
    tree = ast.parse(source)
    scanner = _Scanner("example.py", _wrappers(tree))
    scanner.visit(tree)
    assert scanner.problems == []


def test_faust_topics_carry_raw_bytes_never_pickle() -> None:
    # faust's serializers include "pickle"; every codec a participant names must be
    # "raw" (bytes handed to the project's own Avro codec, which validates them).
    found: list[tuple[str, object]] = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                for keyword in node.keywords:
                    if keyword.arg in ("key_serializer", "value_serializer", "serializer"):
                        value = keyword.value
                        shown = value.value if isinstance(value, ast.Constant) else "<run time>"
                        found.append((path.relative_to(ROOT).as_posix(), shown))
    assert ("sagas/participant/app.py", "raw") in found
    assert {shown for _, shown in found} == {"raw"}, found
