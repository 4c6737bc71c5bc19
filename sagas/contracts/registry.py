"""Schema registries: where the 4-byte schema id of a payload is resolved.

`SchemaRegistry` is the interface the codec needs. Two backends implement it:

- `EmbeddedRegistry` (the default): built from the ``schemas/`` folder, current and
  released versions; ids come from `sagas.contracts.schemas.schema_id`, so every
  process on every machine agrees on them without talking to anyone.
- `sagas.contracts.http_registry.HttpRegistry`: a Confluent-compatible registry over
  HTTP, chosen by setting ``SCHEMA_REGISTRY_URL``.

Subjects follow the RecordNameStrategy: the subject of a record is its Avro full name,
because one saga inbox topic carries many record types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from sagas.contracts.errors import SchemaError, UnknownSchemaError
from sagas.contracts.schemas import SchemaFile, SchemaTree, canonical_json, schema_id


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as the registry knows it.

    Attributes:
        id: the registry id, as written in the wire format.
        schema: the parsed schema (its ``name`` is the Avro full name).
    """

    id: int
    schema: SchemaFile = field(repr=False)

    @property
    def name(self) -> str:
        """The Avro full name of the record."""
        return self.schema.name


class SchemaRegistry(Protocol):
    """What the codec needs from a schema registry.

    Implementations cache: ids never change meaning, so each id is fetched at most once.
    """

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        """Register ``schema`` under ``subject`` (idempotent) and return its id.

        Raises:
            SchemaError: the registry refuses the schema (invalid or incompatible).
            RegistryError: the registry cannot be reached.
        """
        ...

    def lookup(self, schema_id: int) -> RegisteredSchema:
        """The schema with that id.

        Raises:
            UnknownSchemaError: no schema has that id.
            RegistryError: the registry cannot be reached.
        """
        ...

    def has(self, schema_id: int) -> bool:
        """Whether `lookup` answers ``schema_id`` without a request (cached or local)."""
        ...

    def close(self) -> None:
        """Release connections, if any (idempotent)."""
        ...


class EmbeddedRegistry:
    """An in-process registry holding the schemas of a ``schemas/`` folder.

    Every released version and every current schema is registered up front; `register`
    also accepts new schemas (kept in memory only), which is what tests do.
    """

    def __init__(self, schemas: Mapping[str, list[SchemaFile]] | None = None) -> None:
        self._by_id: dict[int, RegisteredSchema] = {}
        for subject, versions in (schemas or {}).items():
            for schema in versions:
                self.register(subject, schema.raw)

    @classmethod
    def from_tree(cls, tree: SchemaTree) -> EmbeddedRegistry:
        """A registry with every released and current schema of ``tree``."""
        subjects: dict[str, list[SchemaFile]] = {}
        for name, versions in tree.history.items():
            subjects.setdefault(name, []).extend(schema for _, schema in versions)
        for name, schema in tree.current.items():
            subjects.setdefault(name, []).append(schema)
        return cls(subjects)

    def register(self, subject: str, schema: Mapping[str, Any]) -> int:
        """Register ``schema`` and return its content-derived id (see `schema_id`)."""
        new_id = schema_id(subject, schema)
        known = self._by_id.get(new_id)
        if known is not None:
            if canonical_json(known.schema.raw) != canonical_json(schema):
                raise SchemaError(
                    f"schema id {new_id} of {subject} collides with {known.name}; "
                    "change either schema's text (e.g. a doc) to get a new id"
                )
            return new_id
        parsed = SchemaFile.from_json(dict(schema), f"subject {subject}")
        if parsed.name != subject:
            raise SchemaError(f"subject {subject} must hold record {subject}, not {parsed.name}")
        self._by_id[new_id] = RegisteredSchema(id=new_id, schema=parsed)
        return new_id

    def lookup(self, schema_id: int) -> RegisteredSchema:
        """The schema with that id; raises `UnknownSchemaError`."""
        found = self._by_id.get(schema_id)
        if found is None:
            raise UnknownSchemaError(f"no schema with id {schema_id} in the embedded registry")
        return found

    def has(self, schema_id: int) -> bool:
        """Every schema of the embedded registry is local."""
        return True

    def close(self) -> None:
        """Nothing to release."""

    def ids(self) -> dict[int, str]:
        """Every registered id and the record it names."""
        return {key: value.name for key, value in self._by_id.items()}
