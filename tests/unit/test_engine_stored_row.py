"""The row the engine writes for a changed instance keeps its body as text only, and
the store row and the changelog record carry that same text."""

from __future__ import annotations

import json

import pytest

from sagas import decide
from sagas.machine import instance_from_dict, instance_to_dict
from sagas.runtime import changelog
from sagas.runtime.batch import stored_row
from sagas.runtime.store import StoredInstance, row
from tests.unit.saga_fixtures import T0, order_saga, placed

SAGA = order_saga()


def test_the_engine_row_keeps_the_body_as_text_only() -> None:
    instance = decide(SAGA, None, placed(), T0).instance
    assert instance is not None
    stored = stored_row(instance, partition=3)
    assert stored.body is None  # the decoded tree is not kept until the store write
    assert instance_from_dict(SAGA, json.loads(stored.body_text())) == instance
    assert stored.body_dict() == json.loads(json.dumps(instance_to_dict(instance)))
    assert row(stored)[9] == stored.body_text()
    assert stored.partition == 3
    assert stored.state == instance.state.value


def test_the_changelog_record_carries_the_same_text_and_reads_back() -> None:
    instance = decide(SAGA, None, placed(), T0).instance
    assert instance is not None
    stored = stored_row(instance, partition=0)
    value = changelog.instance_value(stored)
    assert stored.body_text().encode() in value
    read = changelog.instance_of(value)
    assert read.body == stored.body_dict()
    assert changelog.instance_row(value) == row(stored)


def test_a_stored_instance_needs_a_body() -> None:
    with pytest.raises(ValueError, match="has no body"):
        StoredInstance(
            saga_name="order",
            saga_id="order:o-1",
            partition=0,
            version=1,
            state="running",
            updated_at="2026-12-06T00:00:00.000000Z",
            body=None,
        )
