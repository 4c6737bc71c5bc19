"""What every fault gets: the running system and a place to record what it did.

A fault is an async function taking a `ChaosContext`. It injects the fault, heals it
(restart, resume, proxy back to normal, clock back to real time) and returns; the
runner then measures how long the system took to make progress again. A fault must be
bounded in time and must only touch processes the runner started.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagas.contracts.codec import Codec
    from sagas.dev.broker import DevKafka
    from sagas.dev.system import LocalSystem
    from sagas.machine import SagaInstance


@dataclass
class ChaosContext:
    """The system under test, shared by the runner and every fault.

    Attributes:
        system: engines and services (process names ``engine-N`` and the service names).
        broker: the run's own broker process (never the developer's dev broker).
        bootstrap_servers: what clients use; the proxy's address when there is one.
        direct_servers: the broker's own listener, bypassing the proxy.
        proxy: the TCP fault proxy (`sagas.chaos.proxy`), or None.
        control_dir: one JSON control file per engine (`engine-N.json`): clock offset
            and store faults the engine applies to itself (`sagas.chaos.control`).
        rng: the run's random source (seeded: a failing seed replays).
        killed: processes stopped on purpose (not counted as unexpected exits).
        faults: kind -> number injected.
        poison: dead-letter expectations: message ids (or keys) of poison records sent,
            by the topic they were sent to; the checker finds each in a DLQ.
        notes: free-form facts for the report (e.g. "fenced writes logged: 3").
    """

    system: LocalSystem
    broker: DevKafka
    bootstrap_servers: str
    direct_servers: str
    codec: Codec
    prefix: str
    workdir: Path
    rng: random.Random
    proxy: Any = None
    control_dir: Path | None = None
    engines: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=list)
    killed: set[str] = field(default_factory=set)
    faults: Counter[str] = field(default_factory=Counter)
    poison: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, Any] = field(default_factory=dict)
    log: Callable[[str], None] = print


Fault = Callable[[ChaosContext], Awaitable[None]]
"""Inject one fault, heal it, return. Record the kind in ``ctx.faults``."""


Check = Callable[[ChaosContext, Sequence["SagaInstance[Any]"]], Awaitable[dict[str, list[str]]]]
"""A final check: given the context and the final state of every saga (the latest
changelog record of each saga id, read after quiescence), return violations by kind
(an empty dict when all is well). Each message names the saga or record concerned."""
