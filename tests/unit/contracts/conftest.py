"""Fixtures of the contract tests: the repository's schemas, class map and codec."""

from __future__ import annotations

import pytest

from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.messages import default_class_map
from sagas.contracts.registry import EmbeddedRegistry
from sagas.contracts.schemas import SchemaTree, default_schemas_dir, load_tree


@pytest.fixture(scope="session")
def tree() -> SchemaTree:
    return load_tree(default_schemas_dir()).raise_errors()


@pytest.fixture(scope="session")
def classes() -> ClassMap:
    return default_class_map()


@pytest.fixture(scope="session")
def codec(tree: SchemaTree, classes: ClassMap) -> Codec:
    return Codec(EmbeddedRegistry.from_tree(tree), tree.current, classes)
