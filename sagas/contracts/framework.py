"""The framework's own messages: every app's codec knows them.

Saga outcome events (``sagas.events``), operator actions and the participants' generic
``CommandFailed``. Their schemas ship inside the package (``sagas/contracts/avro/``,
events/, commands/, replies/ and history/) and their classes are generated from them
into `sagas.contracts.messages` by ``sagas codegen``; an app adds its own schemas and
classes next to these (`sagas.App`).
"""

from __future__ import annotations

import functools
from pathlib import Path

from sagas.contracts.messages import ALL_MESSAGES
from sagas.contracts.record import Record
from sagas.contracts.schemas import SchemaTree, load_tree

MESSAGES: tuple[type[Record], ...] = ALL_MESSAGES
"""The framework's message classes."""


def schemas_dir() -> Path:
    """The folder of the framework's own schemas (package data)."""
    return Path(__file__).resolve().parent / "avro"


def messages_dir() -> Path:
    """The folder of the framework's generated classes (`sagas.contracts.messages`)."""
    return Path(__file__).resolve().parent / "messages"


@functools.cache
def schema_tree() -> SchemaTree:
    """The framework's schemas, loaded once (raises `SchemaError` if one is broken)."""
    return load_tree(schemas_dir()).raise_errors()
