"""What every operations command shares: settings, the caught-up read model, output."""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console
from rich.progress import Progress, TaskID

from sagas.app import App
from sagas.contracts.codec import Codec
from sagas.kafka_security import checked_options
from sagas.ops.errors import OpsError
from sagas.ops.readmodel import Follower, OpsStore
from sagas.settings import EngineSettings, KafkaSettings, OpsSettings

SHOW_PROGRESS_AFTER = 1.0
"""Seconds of catching up after which a progress bar appears."""


@dataclass
class Ops:
    """The settings and clients a command works with."""

    app: App
    settings: OpsSettings
    prefix: str
    bootstrap: str | None
    store: OpsStore
    codec: Codec
    follower: Follower | None
    err: Console
    # aiokafka security options; they hold the SASL password, so never in a repr.
    client_options: dict[str, Any] = field(default_factory=dict, repr=False)


def out() -> Console:
    """The console for results (stdout, looked up when printing)."""
    return Console(soft_wrap=True)


def print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, default=str, ensure_ascii=False))


class _Bar:
    """A progress callback that shows a bar only when catching up takes a while."""

    def __init__(self, console: Console) -> None:
        self._console = console
        self._began = time.monotonic()
        self._progress: Progress | None = None
        self._task: TaskID | None = None

    def __call__(self, done: int, total: int) -> None:
        if self._progress is None:
            if time.monotonic() - self._began < SHOW_PROGRESS_AFTER:
                return
            self._progress = Progress(console=self._console, transient=True)
            self._progress.start()
            self._task = self._progress.add_task("catching up with the changelogs", total=total)
        assert self._task is not None
        self._progress.update(self._task, completed=done, total=total)

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


@asynccontextmanager
async def ops_context(app: App, catch_up: bool = True) -> AsyncIterator[Ops]:
    """Open the read model and, when Kafka is configured, catch it up (bounded)."""
    settings = OpsSettings()
    prefix = EngineSettings().topic_prefix
    kafka = KafkaSettings()
    bootstrap = kafka.bootstrap_servers
    options = await checked_options(kafka, bootstrap) if bootstrap else {}
    err = Console(stderr=True)
    store = await OpsStore.open(settings.ops_db)
    codec = app.codec()
    follower = None
    try:
        if bootstrap:
            follower = Follower(
                store, bootstrap, codec, topic_prefix=prefix, client_options=options
            )
            await follower.start()
            if catch_up:
                await _catch_up(follower, settings.ops_catch_up_timeout, err)
        else:
            err.print(
                f"[yellow]KAFKA_BOOTSTRAP_SERVERS is not set: answering from {settings.ops_db} "
                "as it is[/yellow]"
            )
        yield Ops(app, settings, prefix, bootstrap, store, codec, follower, err, options)
    finally:
        if follower is not None:
            await follower.stop()
        await store.close()
        codec.close()


async def _catch_up(follower: Follower, deadline: timedelta, err: Console) -> None:
    bar = _Bar(err)
    try:
        result = await follower.catch_up(deadline, bar)
    finally:
        bar.close()
    if not result.caught_up:
        err.print(
            f"[yellow]the read model is still {result.behind} records behind after "
            f"{deadline.total_seconds():.0f} s (SAGAS_OPS_CATCH_UP_TIMEOUT): answers may be "
            "stale[/yellow]"
        )


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``15m``, ``2h``, ``7d``, ``1w`` or plain seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise OpsError(f"not a duration: {text!r} (e.g. 90s, 15m, 2h, 7d)")
    return timedelta(seconds=float(match[1]) * _UNITS[match[2] or "s"])


def parse_since(text: str) -> datetime:
    """A moment: a duration ago (``2h``) or an ISO 8601 date/time (UTC if naive)."""
    try:
        return datetime.now(UTC) - parse_duration(text)
    except OpsError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise OpsError(f"--since: not a duration or ISO date/time: {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 1
