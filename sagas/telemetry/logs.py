"""Structured logs: JSON lines (or text on a terminal) with trace, span and saga ids.

`configure_logging` is called once by each process entry point (``sagas run``, a
service's ``main``). The saga id comes from a context variable the engine and the
participants set while they work on one saga (`saga_scope`); trace and span ids from
the current OpenTelemetry span.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from opentelemetry import trace

from sagas.settings import TelemetrySettings

SAGA_ID: ContextVar[str | None] = ContextVar("sagas_saga_id", default=None)

_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


@contextmanager
def saga_scope(saga_id: str | None) -> Iterator[None]:
    """Log lines written in this block carry ``saga_id``."""
    token = SAGA_ID.set(saga_id)
    try:
        yield
    finally:
        SAGA_ID.reset(token)


def correlation() -> dict[str, str]:
    """``trace_id``, ``span_id`` and ``saga_id`` where they apply."""
    found: dict[str, str] = {}
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        found["trace_id"] = f"{context.trace_id:032x}"
        found["span_id"] = f"{context.span_id:016x}"
    saga_id = SAGA_ID.get()
    if saga_id is not None:
        found["saga_id"] = saga_id
    return found


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, ids, extra fields."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
            **correlation(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """The usual text line, with the ids appended when there are any."""

    def __init__(self, service: str) -> None:
        super().__init__(f"%(asctime)s {service} %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        ids = correlation()
        if not ids:
            return text
        return text + " [" + " ".join(f"{k}={v}" for k, v in ids.items()) + "]"


def configure_logging(
    service: str, settings: TelemetrySettings, stream: TextIO | None = None
) -> logging.Handler:
    """Send the root logger to ``stream`` (stderr) in the configured format; returns the handler."""
    out = stream or sys.stderr
    as_json = settings.log_format == "json" or (settings.log_format == "auto" and not out.isatty())
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter(service) if as_json else TextFormatter(service))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    return handler
