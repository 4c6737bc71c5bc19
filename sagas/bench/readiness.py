"""When a phase's processes are ready: who the broker says owns which partition.

The primary signal does not depend on any process's log text: the consumer groups'
assignments as the group coordinator reports them (a ``DescribeGroups`` request). A
group is ready when it is ``Stable`` (no rebalance in flight), has the expected number
of members, and its members' assignments cover every partition of its topics exactly
once.

The engines' "owning <topic>[p], ..." log lines are read as well, in the current text
format or as a structured line (``{"message": "owning ...", ...}``): an engine logs
them once it has *taken* its partitions (producers started, changelog caught up), a
step after the assignment. When the logs hold such lines they must agree with the
assignment; when they hold none (a runtime that logs differently), the assignment alone
decides. When the broker cannot be asked (e.g. no describe permission), the logs alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from aiokafka.client import AIOKafkaClient, CoordinationType
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from aiokafka.errors import KafkaError
from aiokafka.protocol.admin import DescribeGroupsRequest_v1, DescribeGroupsRequest_v2
from aiokafka.protocol.api import Request

from sagas.errors import SagasError

_OWNING = re.compile(r"owning (.*)")
_PART = re.compile(r"([\w.\-]+)\[(\d+)\]")


class NotReadyError(SagasError):
    """The processes of a phase did not own their partitions in time."""


@dataclass(frozen=True)
class GroupState:
    """A consumer group as its coordinator describes it.

    Attributes:
        assigned: every (topic, partition) assigned, once per member that holds it.
    """

    state: str
    members: int
    assigned: tuple[tuple[str, int], ...]


def covers(assigned: Iterable[tuple[str, int]], topics: Mapping[str, int]) -> bool:
    """Whether ``assigned`` holds every partition of ``topics`` (name -> count) exactly once."""
    wanted = sorted((t, p) for t, n in topics.items() for p in range(n))
    return sorted(tp for tp in assigned if tp[0] in topics) == wanted


_Versions: TypeAlias = DescribeGroupsRequest_v1 | DescribeGroupsRequest_v2


class _DescribeGroups(Request[_Versions]):  # type: ignore[misc]  # Request is Any to mypy
    """DescribeGroups v1 or v2. aiokafka 0.14's own request goes up to v3, whose class
    names the v2 response layout: reading Kafka 4.4's answer with it failed ("Buffer
    underrun decoding string"). Kafka 4 no longer accepts v0."""

    API_KEY = 15

    def __init__(self, groups: list[str]) -> None:
        self._groups = groups

    def build(self, request_struct_class: type[_Versions]) -> _Versions:
        return request_struct_class(self._groups)


async def describe_groups(client: AIOKafkaClient, groups: list[str]) -> dict[str, GroupState]:
    """The state, member count and decoded assignments of ``groups``."""
    found: dict[str, GroupState] = {}
    for group_id in groups:
        node = await client.coordinator_lookup(CoordinationType.GROUP, group_id)
        response = await client.send(node, _DescribeGroups([group_id]))
        for group in response.to_object()["groups"]:
            assigned: list[tuple[str, int]] = []
            for member in group["members"]:
                raw = member["member_assignment"]
                if not raw:
                    continue  # assignment not synced yet
                decoded = ConsumerProtocolMemberAssignment.decode(raw)
                assigned += [(tp.topic, tp.partition) for tp in decoded.partitions()]
            found[group["group"]] = GroupState(
                group["state"], len(group["members"]), tuple(assigned)
            )
    return found


def group_ready(state: GroupState | None, topics: Mapping[str, int], members: int) -> bool:
    """Stable, ``members`` members, every partition of ``topics`` assigned exactly once."""
    return (
        state is not None
        and state.state == "Stable"
        and state.members == members
        and covers(state.assigned, topics)
    )


def owned_in_log(log: Path) -> dict[str, list[int]] | None:
    """The partitions of the latest "owning ..." line of each topic set in ``log``.

    Returns:
        topic -> partitions, from the last ownership line that names the topic; None when
        the log holds no ownership line at all (or does not exist yet).
    """
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return None
    latest: dict[frozenset[str], list[tuple[str, int]]] = {}
    for line in text.splitlines():
        message = _message(line)
        m = _OWNING.search(message) if "owning" in message else None
        if m is None:
            continue
        parts = [(t, int(p)) for t, p in _PART.findall(m.group(1))]
        # A line names the partitions of one loop (e.g. the inbox, or the events topics):
        # it replaces the previous line about the same topics.
        latest[frozenset(t for t, _ in parts)] = parts
    if not latest:
        return None
    owned: dict[str, list[int]] = {}
    for parts in latest.values():
        for topic, partition in parts:
            owned.setdefault(topic, []).append(partition)
    return owned


def _message(line: str) -> str:
    """The message of a log line: the text itself, or the ``message`` of a JSON line."""
    stripped = line.strip()
    if stripped.startswith("{"):
        with contextlib.suppress(ValueError):
            obj = json.loads(stripped)
            if isinstance(obj, dict):
                return str(obj.get("message", ""))
    return line


def logs_agree(logs: list[Path], topics: Mapping[str, int]) -> bool | None:
    """Whether the logs' latest ownership lines cover ``topics`` exactly once together;
    None when no log holds an ownership line."""
    seen = [owned for log in logs if (owned := owned_in_log(log)) is not None]
    if not seen:
        return None
    assigned = [(t, p) for owned in seen for t, ps in owned.items() for p in ps]
    return covers(assigned, topics)


@dataclass(frozen=True)
class Wanted:
    """One consumer group a phase waits for: its topics (name -> partitions) and size."""

    group: str
    topics: Mapping[str, int]
    members: int
    logs: tuple[Path, ...] = ()
    """Logs of its processes that may hold "owning ..." lines (the engines')."""


async def wait_ready(
    bootstrap: str,
    wanted: list[Wanted],
    deadline_s: float,
    check_alive: Callable[[], None],
    poll_s: float = 0.2,
) -> None:
    """Return once every group of ``wanted`` is ready (see the module docstring).

    Raises:
        NotReadyError: not in time (names what was seen last).
    """
    end = time.monotonic() + deadline_s
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        while True:
            check_alive()
            states: dict[str, GroupState] | None = None
            with contextlib.suppress(KafkaError, OSError):
                states = await describe_groups(client, [w.group for w in wanted])
            if all(_ready(w, states) for w in wanted):
                return
            if time.monotonic() > end:
                raise NotReadyError(
                    f"not ready in {deadline_s:.0f}s: "
                    + "; ".join(_describe(w, states) for w in wanted)
                )
            await asyncio.sleep(poll_s)  # poll interval while the groups settle
    finally:
        await client.close()


def _ready(w: Wanted, states: dict[str, GroupState] | None) -> bool:
    in_logs = logs_agree(list(w.logs), w.topics) if w.logs else None
    if states is None:  # the broker could not be asked: the logs decide
        return bool(in_logs)
    return group_ready(states.get(w.group), w.topics, w.members) and in_logs is not False


def _describe(w: Wanted, states: dict[str, GroupState] | None) -> str:
    state = None if states is None else states.get(w.group)
    if state is None:
        return f"{w.group}: not described"
    return (
        f"{w.group}: {state.state}, {state.members}/{w.members} members, "
        f"assigned {sorted(state.assigned)}"
    )
