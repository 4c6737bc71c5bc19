"""The authoring API is curated: `sagas.__all__` is pinned here, sorted and complete."""

from __future__ import annotations

import ast
from pathlib import Path

import sagas
import sagas.machine
import sagas.testing

PINNED = [
    "Abort",
    "App",
    "AppError",
    "Await",
    "Command",
    "Compensation",
    "Decision",
    "DefinitionError",
    "Emit",
    "On",
    "Parallel",
    "Pause",
    "Resume",
    "Retry",
    "RetryNow",
    "RetryPolicy",
    "Saga",
    "SagaInstance",
    "SagaState",
    "SagasError",
    "SkipStep",
    "Start",
    "Step",
    "StepKind",
    "StepStatus",
    "TimerFired",
    "Unpause",
    "Usage",
    "decide",
    "load_app",
]


def test_all_is_pinned_and_sorted() -> None:
    assert sagas.__all__ == PINNED
    assert sorted(sagas.__all__) == sagas.__all__


def test_every_name_exists() -> None:
    for module in (sagas, sagas.machine, sagas.testing):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"


def test_the_pure_core_imports_no_io_library() -> None:
    allowed_roots = {"sagas", "__future__"}
    stdlib_ok = {
        "collections", "dataclasses", "datetime", "decimal", "enum", "functools", "hashlib",
        "inspect", "re", "string", "types", "typing", "uuid",
    }  # fmt: skip
    root = Path(sagas.__file__).parent
    files = [
        *root.joinpath("definition").glob("*.py"),
        *root.joinpath("machine").glob("*.py"),
        root / "contracts" / "topics.py",
    ]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                # Each name imported: `from sagas.contracts import topics` is the module.
                names = [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                top = name.split(".")[0]
                assert top in allowed_roots | stdlib_ok, f"{path.name} imports {name}"
                if top == "sagas":
                    assert name.startswith(
                        (
                            "sagas.definition",
                            "sagas.machine",
                            "sagas.contracts.record",
                            "sagas.contracts.topics",
                            "sagas.errors",
                        )
                    ), f"{path.name} imports {name}"
