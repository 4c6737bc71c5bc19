"""Build a ready codec from settings: schemas, class map, and the chosen registry."""

from __future__ import annotations

import httpx

from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.http_registry import HttpRegistry
from sagas.contracts.messages import default_class_map
from sagas.contracts.registry import EmbeddedRegistry, SchemaRegistry
from sagas.contracts.schemas import load_tree
from sagas.contracts.settings import ContractSettings


def build_codec(
    settings: ContractSettings | None = None,
    *,
    classes: ClassMap | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Codec:
    """A codec over the schemas folder and the registry the settings name.

    Args:
        settings: defaults to `ContractSettings` read from the environment.
        classes: defaults to every message class of the project.
        transport: httpx transport for the HTTP registry (tests pass a fake).

    Raises:
        SchemaError: a schema file is invalid.
        UnknownTypeError: a message class has no schema.
    """
    settings = settings or ContractSettings()
    tree = load_tree(settings.schemas_dir).raise_errors()
    registry: SchemaRegistry
    if settings.schema_registry_url:
        registry = HttpRegistry(
            settings.schema_registry_url,
            timeout=settings.registry_timeout,
            transport=transport,
        )
    else:
        registry = EmbeddedRegistry.from_tree(tree)
    return Codec(
        registry,
        tree.current,
        classes or default_class_map(),
        max_payload_bytes=settings.max_payload_bytes,
    )
