"""Instances (and the envelopes and records inside) to and from JSON-compatible dicts.

The runtime stores an instance as JSON in SQLite and in the changelog. Decoding needs
the definition: it names the saga data class, and its message classes form the
registry used to decode records (extra classes can be added, e.g. records kept in the
saga data that the definition does not mention).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from sagas.contracts.record import Envelope, Record
from sagas.definition import Saga
from sagas.machine.codec import JSON, TYPE_KEY, from_json, to_json, type_hints
from sagas.machine.instance import SagaInstance

D = TypeVar("D")

FORMAT = 1
"""The version of the stored form; bumped (with a migration) when it changes."""


def instance_to_dict(instance: SagaInstance[Any]) -> dict[str, JSON]:
    """The instance as JSON-compatible data (``json.dumps`` takes it as is)."""
    encoded = to_json(instance)
    assert isinstance(encoded, dict)  # a dataclass encodes to an object
    return {"format": FORMAT, **encoded}


def instance_from_dict(
    definition: Saga[D], data: Mapping[str, JSON], extra_types: Iterable[type[Record]] = ()
) -> SagaInstance[D]:
    """Rebuild an instance stored with `instance_to_dict`.

    Raises:
        ValueError: the stored form has another format or belongs to another saga.
        TypeError: a value does not fit its type.
    """
    if data.get("format") != FORMAT:
        raise ValueError(f"unknown instance format {data.get('format')!r}")
    if data.get("saga") != definition.name or data.get("version") != definition.version:
        raise ValueError(
            f"instance of {data.get('saga')!r} v{data.get('version')!r} given to "
            f"{definition.name!r} v{definition.version}"
        )
    registry = _registry(definition, extra_types)
    hints = type_hints(SagaInstance)
    kwargs: dict[str, Any] = {}
    for field in dataclasses.fields(SagaInstance):
        if field.name in data:
            tp = definition.data if field.name == "data" else hints[field.name]
            kwargs[field.name] = from_json(tp, data[field.name], registry)
    instance: SagaInstance[D] = SagaInstance(**kwargs)
    return instance


def envelope_to_dict(envelope: Envelope) -> dict[str, JSON]:
    """An envelope as JSON-compatible data (its payload tagged with its schema)."""
    encoded = to_json(envelope)
    assert isinstance(encoded, dict)
    return encoded


def envelope_from_dict(
    definition: Saga[Any], data: Mapping[str, JSON], extra_types: Iterable[type[Record]] = ()
) -> Envelope:
    """Rebuild an envelope stored with `envelope_to_dict`."""
    envelope: Envelope = from_json(Envelope, dict(data), _registry(definition, extra_types))
    return envelope


def record_to_dict(record: Record) -> dict[str, JSON]:
    """A record as JSON-compatible data, with its schema under ``"$type"``."""
    encoded = to_json(record)
    assert isinstance(encoded, dict)
    return encoded


def record_from_dict(
    definition: Saga[Any], data: Mapping[str, JSON], extra_types: Iterable[type[Record]] = ()
) -> Record:
    """Rebuild a record stored with `record_to_dict` (e.g. an operator's skip result)."""
    if not isinstance(data.get(TYPE_KEY), str):
        raise TypeError(f"a record needs its schema under {TYPE_KEY!r}")
    record: Record = from_json(Record, dict(data), _registry(definition, extra_types))
    return record


def _registry(definition: Saga[Any], extra: Iterable[type[Record]]) -> dict[str, type[Record]]:
    return {**definition.message_types, **{t.SCHEMA: t for t in extra}}
