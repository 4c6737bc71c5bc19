"""The chaos runner's hold on one engine process: a small JSON control file.

The runner writes ``{"clock_offset_s": float, "store": "ok" | "full" | "readonly"}`` with
`write_control` (atomically: a temporary file renamed over the old one). An engine
started by the chaos entry point (`sagas.chaos.engine`, ``SAGAS_CHAOS_CONTROL=<file>``)
runs a `ChaosControl` that reads the file
every 0.2 s and applies it to itself: its clock is the system clock plus
``clock_offset_s``, and its own SQLite connection refuses writes as a full disk
(``PRAGMA max_page_count``) or a read-only file (``PRAGMA query_only``) until the file
says ``ok`` again (`sagas.chaos.store.FaultyStore`). A missing file means no fault. An
engine started by ``sagas run`` has none of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from sagas.chaos.store import FaultyStore
from sagas.errors import SagasError

log = logging.getLogger(__name__)

StoreMode = Literal["ok", "full", "readonly"]
STORE_MODES: tuple[StoreMode, ...] = ("ok", "full", "readonly")


class ControlError(SagasError):
    """A chaos control file or value is not valid."""


@dataclass(frozen=True)
class Control:
    """What an engine applies to itself (the defaults: no fault)."""

    clock_offset_s: float = 0.0
    store: StoreMode = "ok"


def _validated(fields: dict[str, Any], where: str) -> Control:
    unknown = sorted(set(fields) - {"clock_offset_s", "store"})
    if unknown:
        raise ControlError(f"{where}: unknown control fields {unknown}")
    offset = fields.get("clock_offset_s", 0.0)
    if isinstance(offset, bool) or not isinstance(offset, int | float):
        raise ControlError(f"{where}: clock_offset_s must be a number, not {offset!r}")
    store = fields.get("store", "ok")
    if store not in STORE_MODES:
        raise ControlError(f"{where}: store must be one of {STORE_MODES}, not {store!r}")
    return Control(float(offset), cast(StoreMode, store))


def read_control(path: Path) -> Control:
    """The control in ``path``; no fault when the file does not exist.

    Raises:
        ControlError: the file is not a JSON object of known, valid fields.
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return Control()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ControlError(f"{path}: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise ControlError(f"{path}: not a JSON object")
    return _validated(doc, str(path))


def write_control(path: Path, **fields: Any) -> Control:
    """Set ``fields`` in the control file (others keep their value); return the result.

    The file is replaced atomically, so the engine never reads half of it.

    Raises:
        ControlError: an unknown field or an invalid value.
    """
    control = _validated({**asdict(read_control(path)), **fields}, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(asdict(control), out)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return control


def utcnow() -> datetime:
    """The system clock (UTC): what the offset is added to."""
    return datetime.now(UTC)


class ChaosControl:
    """Follows a control file and applies it to this engine process.

    Give `now` to the engine as its clock and run `run` next to the engine's loops
    (the engine does both when constructed with it as a companion).

    Args:
        path: the control file.
        store: the engine's store, whose connection the store faults apply to.
        poll: how often the file is read.
        source: the system clock the offset is added to.
    """

    def __init__(
        self,
        path: Path,
        store: FaultyStore,
        poll: timedelta = timedelta(milliseconds=200),
        source: Callable[[], datetime] = utcnow,
    ) -> None:
        self.path = path
        self._store = store
        self._poll = poll.total_seconds()
        self._source = source
        self._offset = timedelta(0)
        self.applied = Control()
        self._stopping = asyncio.Event()
        self._complained = False

    def now(self) -> datetime:
        """The system clock plus the current offset."""
        return self._source() + self._offset

    def stop(self) -> None:
        """Ask `run` to return; idempotent. The store is healed on the way out."""
        self._stopping.set()

    async def run(self) -> None:
        """Poll the file until `stop`."""
        log.warning("chaos control on: following %s", self.path)
        try:
            while not self._stopping.is_set():
                await self.poll_once()
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for can turn a
                # cancellation into TimeoutError, and this loop would outlive its
                # TaskGroup's abort (the engine then hangs instead of exiting).
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll):
                        await self._stopping.wait()
        finally:
            if self.applied.store != "ok":
                await self._store.refuse_writes(None)

    async def poll_once(self) -> Control:
        """Read the file and apply what changed; a bad file is logged and ignored."""
        try:
            wanted = read_control(self.path)
        except (ControlError, OSError) as exc:
            if not self._complained:
                log.error("chaos control file ignored: %s", exc)
                self._complained = True
            return self.applied
        self._complained = False
        if wanted.clock_offset_s != self.applied.clock_offset_s:
            self._offset = timedelta(seconds=wanted.clock_offset_s)
            log.warning("chaos: engine clock offset now %+.1fs", wanted.clock_offset_s)
        if wanted.store != self.applied.store:
            await self._store.refuse_writes(None if wanted.store == "ok" else wanted.store)
            log.warning("chaos: engine store now %s", wanted.store)
        self.applied = wanted
        return wanted
