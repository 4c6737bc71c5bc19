"""The read model's tables. Timestamps are sortable UTC text (``...T12:00:00.000000Z``)."""

from __future__ import annotations

SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    saga_name   TEXT    NOT NULL,
    saga_id     TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    version     INTEGER NOT NULL,
    state       TEXT    NOT NULL,
    started_at  TEXT,
    updated_at  TEXT    NOT NULL,
    ended_at    TEXT,
    next_due    TEXT,
    waiting     TEXT    NOT NULL,
    search      TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    PRIMARY KEY (saga_name, saga_id)
);
CREATE INDEX IF NOT EXISTS ops_instances_updated ON instances (updated_at);
CREATE INDEX IF NOT EXISTS ops_instances_state ON instances (saga_name, state);
CREATE INDEX IF NOT EXISTS ops_instances_id ON instances (saga_id);
CREATE INDEX IF NOT EXISTS ops_instances_ended ON instances (ended_at);
CREATE TABLE IF NOT EXISTS outcomes (
    id        TEXT PRIMARY KEY,
    type      TEXT NOT NULL,
    saga_name TEXT NOT NULL,
    saga_id   TEXT NOT NULL,
    step      TEXT,
    reason    TEXT,
    at        TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS ops_outcomes_at ON outcomes (at);
-- History entries moved out of an instance by the engine (sagas.<saga>.history): the
-- body keeps the latest ones; `OpsStore.body` puts the two together.
CREATE TABLE IF NOT EXISTS history (
    saga_name TEXT    NOT NULL,
    saga_id   TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    entry     TEXT    NOT NULL,
    PRIMARY KEY (saga_name, saga_id, seq)
);
CREATE TABLE IF NOT EXISTS offsets (
    topic       TEXT    NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
"""
