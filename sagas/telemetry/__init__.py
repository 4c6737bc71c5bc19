"""Telemetry: one trace per saga across every service, metrics, structured logs.

Modules: `setup` (providers and exporters from `TelemetrySettings`), `propagation`
(W3C trace context in Kafka headers, the saga span's id), `engine` and `participant`
(the spans and metrics each kind of process reports), `process` (CPU and memory),
`logs` (JSON logs with trace, span and saga ids), `files` (JSON-lines exporters) and
`traces` (reassembling traces from those files). See docs/observability.md.

Nothing here sets a global at import time: entry points call `setup` and
`Telemetry.install_global` once.
"""

from __future__ import annotations

from sagas.telemetry.engine import EngineTelemetry
from sagas.telemetry.logs import configure_logging, saga_scope
from sagas.telemetry.participant import ParticipantTelemetry
from sagas.telemetry.propagation import extract, inject
from sagas.telemetry.setup import Telemetry, disabled, setup

__all__ = [
    "EngineTelemetry",
    "ParticipantTelemetry",
    "Telemetry",
    "configure_logging",
    "disabled",
    "extract",
    "inject",
    "saga_scope",
    "setup",
]
