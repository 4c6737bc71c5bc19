"""Build a ready codec: schemas, class map, and the registry the settings choose."""

from __future__ import annotations

import httpx

from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.http_registry import HttpRegistry
from sagas.contracts.registry import EmbeddedRegistry, SchemaRegistry
from sagas.contracts.schemas import SchemaTree
from sagas.contracts.settings import ContractSettings


def build_codec(
    tree: SchemaTree,
    classes: ClassMap,
    settings: ContractSettings | None = None,
    *,
    transport: httpx.BaseTransport | None = None,
) -> Codec:
    """A codec over ``tree``'s schemas and ``classes``, with the registry the settings name.

    Most callers use `sagas.App.codec`, which passes the app's tree and classes.

    Args:
        tree: every schema (current and released versions) the codec must know.
        classes: the class of every message type.
        settings: defaults to `ContractSettings` read from the environment.
        transport: httpx transport for the HTTP registry (tests pass a fake).

    Raises:
        UnknownTypeError: a message class has no schema.
    """
    settings = settings or ContractSettings()
    tree.raise_errors()
    registry: SchemaRegistry
    if settings.schema_registry_url:
        registry = HttpRegistry(
            settings.schema_registry_url,
            timeout=settings.registry_timeout,
            transport=transport,
        )
    else:
        registry = EmbeddedRegistry.from_tree(tree)
    return Codec(registry, tree.current, classes, max_payload_bytes=settings.max_payload_bytes)
