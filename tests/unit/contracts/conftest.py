"""Fixtures of the contract tests: the repository's schemas, class map and codec."""

from __future__ import annotations

import pytest

from sagas.contracts.classmap import ClassMap
from sagas.contracts.codec import Codec
from sagas.contracts.registry import EmbeddedRegistry
from sagas.contracts.schemas import SchemaTree
from services.app import app as examples


@pytest.fixture(scope="session")
def tree() -> SchemaTree:
    """The example app's schemas and the framework's own, as one tree."""
    return examples.schema_tree


@pytest.fixture(scope="session")
def classes() -> ClassMap:
    return examples.classes


@pytest.fixture(scope="session")
def codec(tree: SchemaTree, classes: ClassMap) -> Codec:
    return Codec(EmbeddedRegistry.from_tree(tree), tree.current, classes)
