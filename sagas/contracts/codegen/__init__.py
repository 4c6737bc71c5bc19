"""`sagas codegen`: the typed message classes, generated from the Avro schemas.

The ``.avsc`` files are the single source of truth. `generate` turns the current schemas
of a `SchemaTree` into Python source: one module per Avro namespace (``orders.py``) and
an ``__init__.py``. It reads and writes no file; `sagas.contracts.generated` keeps a
folder in step with its output, and `sagas check` compares the two.

==========================================  ===============================================
Avro                                        Python
==========================================  ===============================================
record with a schema file of its own        `Record` subclass with ``SCHEMA = "<full name>"``
record defined inside a schema              ``@dataclass(frozen=True, kw_only=True)`` class
enum                                        `enum.StrEnum`; members named as the symbols
string, bytes or fixed, int or long         ``str``, ``bytes``, ``int``
float or double, boolean                    ``float``, ``bool``
bytes or fixed with logicalType decimal     ``Decimal``
long with timestamp-millis or -micros       ``datetime`` (aware, UTC)
int with date                               ``date``
array of T                                  ``tuple[T, ...]``
``["null", T]`` or ``[T, "null"]``          ``T | None``
==========================================  ===============================================

Class names are the Avro names, fields keep the schema's names and order. A field's
default becomes a Python literal (`sagas.contracts.defaults`): ``= None`` for a null
default, ``= Role.ENGINEER`` for an enum symbol, ``= ()`` for an empty array. The
schema's and its fields' ``doc`` become the class docstring and its ``Attributes:``.
A type of another namespace is imported from that namespace's module
(``from .hr import Role``); when its short name is taken in the importing module, the
module is imported instead (``orders.Address``). A named type that several schemas
define (self-contained files repeat them) must be defined the same way in each.

Whatever a class cannot express is refused with a `SchemaError` naming the schema and
the field: other unions, maps, recursive records, other logical types, record or map
defaults, Python keywords as names, a namespace that is not a module name.
"""

from __future__ import annotations

from sagas.contracts.codegen.collect import Named, collect
from sagas.contracts.codegen.module import HEADER, render_init, render_module
from sagas.contracts.schemas import SchemaTree

__all__ = ["HEADER", "INIT", "generate"]

INIT = "__init__.py"


def generate(tree: SchemaTree) -> dict[str, str]:
    """The source of every generated file, by file name (``<namespace>.py``, ``__init__.py``).

    Deterministic: the same schemas give the same text, whatever the order they were
    read in and wherever the schemas folder is.

    Raises:
        SchemaError: the tree did not load, or a schema holds something no generated
            class can express (the message names the schema and the field).
    """
    tree.raise_errors()
    modules: dict[str, list[Named]] = {}
    for item in sorted(collect(tree).values(), key=lambda n: n.full):
        modules.setdefault(item.namespace, []).append(item)
    sources = {
        f"{namespace}.py": render_module(namespace, items, tree.kinds)
        for namespace, items in sorted(modules.items())
    }
    sources[INIT] = render_init(sorted(modules))
    return sources
