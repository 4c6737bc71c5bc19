"""The examples of docs/concepts.md and of the `Saga` and `sagas.testing` docstrings are
the shipped code: each is written out as a module and imported here (as the tutorial's
files are), and the definitions must build the very saga
`services/definitions/order_fulfilment.py` does."""

from __future__ import annotations

import importlib
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from sagas import Saga, testing
from sagas.testing import EPOCH, Harness
from services.definitions.order_fulfilment import ORDER_FULFILMENT

CONCEPTS = Path(__file__).resolve().parents[2] / "docs" / "concepts.md"

# What the examples take as given: the shipped module, the messages, the test kit.
GIVEN = """\
from services.messages.inventory import *
from services.messages.orders import *
from services.messages.payments import *
from services.messages.shipping import *
from services.definitions.order_fulfilment import *
from sagas.testing import *
from tests.unit.test_order_fulfilment import order

order_placed = order("o-1")
del ORDER_FULFILMENT  # the example defines it, or uses the shipped one below
"""


@pytest.fixture
def run(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Import ``code`` (after `GIVEN`) as a module of its own; returns the module."""
    names: list[str] = []
    sys.path.insert(0, str(tmp_path))

    def load(code: str, shipped: bool = False) -> ModuleType:
        name = f"example_{request.node.name}_{len(names)}"
        given = GIVEN + (
            "from services.definitions.order_fulfilment import ORDER_FULFILMENT\n"
            if shipped
            else ""
        )
        (tmp_path / f"{name}.py").write_text(given + "\n" + code, encoding="utf-8")
        importlib.invalidate_caches()
        names.append(name)
        module = importlib.import_module(name)
        return module

    try:
        yield load
    finally:
        sys.path.remove(str(tmp_path))
        for name in names:
            sys.modules.pop(name, None)


def blocks() -> list[str]:
    """The python blocks of docs/concepts.md, in order."""
    return re.findall(r"```python\n(.*?)```", CONCEPTS.read_text(), flags=re.DOTALL)


def indented_after(doc: str, marker: str, indent: int) -> str:
    """The literal block that follows ``marker`` and a ``::`` line in a docstring."""
    rest = doc.split(marker, 1)[1].split("::\n", 1)[1]
    found = re.match(rf"((?:\n| {{{indent}}}.*\n)+)", rest)
    assert found is not None
    return textwrap.dedent(found.group(1))


def test_the_concepts_example_is_the_shipped_order_saga(run: Any) -> None:
    [definition] = [b for b in blocks() if "= Saga(" in b]
    example = run(definition).ORDER_FULFILMENT
    assert isinstance(example, Saga)
    assert example is not ORDER_FULFILMENT
    assert example == ORDER_FULFILMENT


def test_the_saga_docstring_example_is_the_shipped_order_saga(run: Any) -> None:
    example = run(indented_after(Saga.__doc__ or "", "defines it", 8)).ORDER_FULFILMENT
    assert example is not ORDER_FULFILMENT
    assert example == ORDER_FULFILMENT


def test_the_concepts_testing_example_runs(run: Any) -> None:
    [example] = [b for b in blocks() if "Harness(" in b]
    harness = run(example, shipped=True).harness  # it ends with the kit's own assertion
    assert isinstance(harness, Harness)
    assert harness.now > EPOCH


def test_the_testing_module_example_runs(run: Any) -> None:
    harness = run(indented_after(testing.__doc__ or "", "virtual time", 4), shipped=True).harness
    assert isinstance(harness, Harness)
    assert harness.now > EPOCH
