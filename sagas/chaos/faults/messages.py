"""Message faults: duplicated commands and replies, stale replies, a rewound group.

Every fault reads what the system already wrote (``read_committed``, through the
broker's direct listener) and re-produces some of it unchanged, same key, value and
headers, so the ``ce_id`` is the original's:

* ``duplicate_commands``: recent commands again on their ``<service>.commands`` topic;
  the participants must dedupe them by ``ce_id`` and replay the stored reply;
* ``duplicate_replies``: recent replies again on the saga inboxes (participants reply
  to the ``reply_to`` the engine names, which is the saga's inbox);
* ``stale_replies``: replies of sagas that have already ended, again on their inbox;
  the engine must record them as ignored without changing any saga;
* ``group_rewind``: a participant is killed, its consumer group's committed offsets
  are moved some records back, and it is restarted: it must apply nothing twice.

Records that do not decode (poison, see `sagas.chaos.faults.poison`) are never
duplicated: the dead-letter check counts each poison record by its key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.protocol.group import LeaveGroupRequest

from sagas.chaos.faults.base import ChaosContext, Fault
from sagas.contracts import topics
from sagas.contracts.errors import ContractError
from sagas.contracts.record import Envelope
from sagas.runtime import changelog

log = logging.getLogger(__name__)

RECENT = 200
"""Records read back per partition when looking for something to duplicate."""

PICK = 20
"""Records re-produced by one duplicate or stale-reply fault (at most)."""

READ_DEADLINE_S = 30.0
HEALTHY_DEADLINE_S = 90.0


# -- reading what the system wrote -----------------------------------------------------


async def list_topics(servers: str) -> set[str]:
    """Every topic name on the cluster."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def partitions(servers: str, names: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the topics ``names`` that exist."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(names))
    finally:
        await admin.close()
    return [
        TopicPartition(d["topic"], p["partition"])
        for d in described
        if d.get("error_code", 0) == 0
        for p in d["partitions"]
    ]


async def read_topics(
    servers: str,
    names: Iterable[str],
    last: int | None = None,
    deadline_s: float = READ_DEADLINE_S,
) -> list[ConsumerRecord[Any, Any]]:
    """The committed records of ``names`` (the ``last`` of each partition, or all).

    Reads ``read_committed`` without a group up to the last stable offsets as of the
    call, or until ``deadline_s`` passes (then returns what it has).
    """
    wanted = sorted(set(names))
    if not wanted:
        return []
    tps = await partitions(servers, wanted)
    if not tps:
        return []
    consumer = AIOKafkaConsumer(
        bootstrap_servers=servers,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
        begins = await consumer.beginning_offsets(tps)
        todo = [tp for tp in tps if ends[tp] > begins[tp]]
        if not todo:
            return []
        consumer.assign(todo)
        for tp in todo:
            start = begins[tp] if last is None else max(begins[tp], ends[tp] - last)
            consumer.seek(tp, start)
        found: list[ConsumerRecord[Any, Any]] = []
        loop = asyncio.get_running_loop()
        end_at = loop.time() + deadline_s
        while loop.time() < end_at:
            done = [tp for tp in todo if await consumer.position(tp) >= ends[tp]]
            if len(done) == len(todo):
                break
            data = await consumer.getmany(timeout_ms=300, max_records=5000)
            for tp, records in data.items():
                found.extend(r for r in records if r.offset < ends[tp])
        return found
    finally:
        await consumer.stop()


def decodes(ctx: ChaosContext, record: ConsumerRecord[Any, Any]) -> Envelope | None:
    """The record's envelope, or None when it is poison (or not ours to touch)."""
    if record.key is not None and _is_poison_key(ctx, record.key):
        return None
    try:
        return ctx.codec.decode(record.headers or [], record.value)
    except ContractError:
        return None


def _is_poison_key(ctx: ChaosContext, key: bytes) -> bool:
    text = key.decode(errors="replace")
    return any(text in keys for keys in ctx.poison.values())


async def reproduce(ctx: ChaosContext, records: Sequence[ConsumerRecord[Any, Any]]) -> int:
    """Produce ``records`` again, unchanged, to their topic and partition."""
    if not records:
        return 0
    producer = AIOKafkaProducer(bootstrap_servers=ctx.direct_servers, enable_idempotence=True)
    await producer.start()
    try:
        for r in records:
            await producer.send(
                r.topic, r.value, key=r.key, headers=list(r.headers or ()), partition=r.partition
            )
        await producer.flush()
    finally:
        await producer.stop()
    return len(records)


def _command_topics(ctx: ChaosContext, names: Iterable[str]) -> list[str]:
    """The command topics of this run among the broker topics ``names``."""
    return sorted(
        t
        for t in names
        if (name := topics.logical(ctx.prefix, t)) is not None and topics.is_commands(name)
    )


def _inbox_saga(ctx: ChaosContext, topic: str) -> str | None:
    """The saga whose inbox broker topic ``topic`` is, in this run; else None."""
    name = topics.logical(ctx.prefix, topic)
    return None if name is None else topics.saga_of(name, topics.inbox)


def _inboxes(ctx: ChaosContext, names: Iterable[str]) -> list[str]:
    return sorted(t for t in names if _inbox_saga(ctx, t) is not None)


# -- duplicates -------------------------------------------------------------------------


async def duplicate_commands(ctx: ChaosContext) -> None:
    """Re-produce recent commands onto their command topics, same ``ce_id``."""
    names = _command_topics(ctx, await list_topics(ctx.direct_servers))
    records = await read_topics(ctx.direct_servers, names, last=RECENT)
    commands = [r for r in records if (e := decodes(ctx, r)) is not None and e.reply_to]
    chosen = ctx.rng.sample(commands, min(PICK, len(commands)))
    sent = await reproduce(ctx, chosen)
    ctx.notes["duplicated_commands"] = ctx.notes.get("duplicated_commands", 0) + sent
    ctx.faults["duplicate_commands"] += 1
    ctx.log(f"duplicate_commands: re-produced {sent} of {len(commands)} recent commands")


def _is_reply(envelope: Envelope) -> bool:
    # Participants answer command ``X`` with message id ``X:reply`` (sagas.participant).
    return envelope.id.endswith(":reply") and envelope.saga_id is not None


async def duplicate_replies(ctx: ChaosContext) -> None:
    """Re-produce recent replies onto the saga inboxes, same ``ce_id``."""
    inboxes = _inboxes(ctx, await list_topics(ctx.direct_servers))
    records = await read_topics(ctx.direct_servers, inboxes, last=RECENT)
    replies = [r for r in records if (e := decodes(ctx, r)) is not None and _is_reply(e)]
    chosen = ctx.rng.sample(replies, min(PICK, len(replies)))
    sent = await reproduce(ctx, chosen)
    ctx.notes["duplicated_replies"] = ctx.notes.get("duplicated_replies", 0) + sent
    ctx.faults["duplicate_replies"] += 1
    ctx.log(f"duplicate_replies: re-produced {sent} of {len(replies)} recent replies")


async def ended_sagas(ctx: ChaosContext, inboxes: Iterable[str]) -> set[str]:
    """Saga ids whose latest changelog record says they ended (of these inboxes' sagas).

    Reads the changelogs' recent records only (a long run's are large): a saga's latest
    record in that suffix is its latest of all, and an ended saga never runs again.
    """
    logs = [
        topics.physical(ctx.prefix, topics.changelog(saga))
        for t in inboxes
        if (saga := _inbox_saga(ctx, t)) is not None
    ]
    latest: dict[bytes, bytes | None] = {}
    for record in await read_topics(ctx.direct_servers, logs, last=RECENT * 5):
        if record.key is not None and not record.key.startswith(changelog.HELD_PREFIX):
            latest[record.key] = record.value
    ended: set[str] = set()
    for key, value in latest.items():
        with contextlib.suppress(ValueError, KeyError, TypeError):
            if value is not None and json.loads(value)["row"].get("ended_at"):
                ended.add(key.decode())
    return ended


async def stale_replies(ctx: ChaosContext) -> None:
    """Re-produce replies of sagas that have already ended onto their inboxes."""
    inboxes = _inboxes(ctx, await list_topics(ctx.direct_servers))
    ended = await ended_sagas(ctx, inboxes)
    records = await read_topics(ctx.direct_servers, inboxes, last=RECENT * 5)
    stale = [
        r
        for r in records
        if (e := decodes(ctx, r)) is not None and _is_reply(e) and e.saga_id in ended
    ]
    chosen = ctx.rng.sample(stale, min(PICK, len(stale)))
    sent = await reproduce(ctx, chosen)
    ctx.notes["stale_replies"] = ctx.notes.get("stale_replies", 0) + sent
    ctx.faults["stale_replies"] += 1
    ctx.log(f"stale_replies: re-produced {sent} replies of {len(ended)} ended sagas")


# -- a rewound consumer group -----------------------------------------------------------


def service_group(ctx: ChaosContext, name: str) -> str:
    """The consumer group of participant ``name`` (`ServiceSettings.group`)."""
    env = ctx.system.supervisor.processes[name].spec.env
    return (
        env.get("SERVICE_GROUP_ID") or f"{env.get('SAGAS_TOPIC_PREFIX', ctx.prefix)}{name}-service"
    )


async def _group_state(admin: AIOKafkaAdminClient, group: str) -> tuple[str, list[str]]:
    """The group's state and member ids (DescribeGroups)."""
    response = (await admin.describe_consumer_groups([group]))[0]
    described = response.groups[0]
    return str(described[2]), [str(m[0]) for m in described[5]]


async def _empty_group(admin: AIOKafkaAdminClient, group: str, deadline_s: float) -> float:
    """Make the group memberless: the dead member leaves on our behalf, or times out.

    Returns the seconds it took."""
    loop = asyncio.get_running_loop()
    end_at = loop.time() + deadline_s
    coordinator = await admin.find_coordinator(group)
    while True:
        state, members = await _group_state(admin, group)
        if state in ("Empty", "Dead"):
            return deadline_s - (end_at - loop.time())
        for member in members:
            # A dead member would only leave after its session timeout (faust: 60 s);
            # LeaveGroup on its behalf ends it now. aiokafka's admin has no public call
            # for it, so the request goes through its request method.
            with contextlib.suppress(KafkaError):
                await admin._send_request(LeaveGroupRequest(group, member), coordinator)
        if loop.time() > end_at:
            raise TimeoutError(f"group {group} still {state} with {members} after {deadline_s}s")
        await asyncio.sleep(0.5)  # polling interval: the coordinator rebalances


async def rewind_group(
    servers: str, group: str, back: int, deadline_s: float = 75.0
) -> dict[TopicPartition, tuple[int, int]]:
    """Move every committed offset of ``group`` ``back`` records back (not before the
    log start); returns partition -> (old offset, new offset). The group must have no
    live member; a dead one is made to leave first."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        emptied_s = await _empty_group(admin, group, deadline_s)
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    log.info("group %s had no member %.1fs after its member died", group, emptied_s)
    # faust's own leader-election topic is not input: leave it alone.
    tps = {
        tp: m.offset for tp, m in committed.items() if m.offset > 0 and "__assignor" not in tp.topic
    }
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        begins = await consumer.beginning_offsets(list(tps))
        moves = {tp: (old, max(begins[tp], old - back)) for tp, old in tps.items()}
        consumer.assign(list(tps))
        await consumer.commit({tp: new for tp, (_, new) in moves.items()})
        return moves
    finally:
        await consumer.stop()


async def caught_up(
    servers: str, group: str, targets: dict[TopicPartition, int], deadline_s: float
) -> None:
    """Wait until ``group`` has committed at least ``targets`` again."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    loop = asyncio.get_running_loop()
    end_at = loop.time() + deadline_s
    try:
        while True:
            with contextlib.suppress(KafkaError):
                now = await admin.list_consumer_group_offsets(group, partitions=list(targets))
                if all(now[tp].offset >= off for tp, off in targets.items() if tp in now):
                    return
            if loop.time() > end_at:
                raise TimeoutError(f"group {group} did not catch up in {deadline_s}s")
            await asyncio.sleep(0.5)  # polling interval: faust commits every few seconds
    finally:
        await admin.close()


async def group_rewind(ctx: ChaosContext) -> None:
    """Kill a participant, rewind its group's offsets, restart it, wait until it caught up."""
    supervisor = ctx.system.supervisor
    alive = [
        n for n in ctx.services if n in supervisor.processes and supervisor.processes[n].alive()
    ]
    if not alive:
        ctx.log("group_rewind: no live service to rewind")
        return
    name = ctx.rng.choice(sorted(alive))
    group = service_group(ctx, name)
    back = ctx.rng.randint(5, 40)
    supervisor.kill(name)
    ctx.killed.add(name)
    try:
        moves = await rewind_group(ctx.direct_servers, group, back)
    finally:
        supervisor.restart(name)
    if name in ctx.system.web_ports:
        await ctx.system.wait_healthy(name, HEALTHY_DEADLINE_S)
    await caught_up(
        ctx.direct_servers, group, {tp: old for tp, (old, _) in moves.items()}, HEALTHY_DEADLINE_S
    )
    rewound = sum(old - new for old, new in moves.values())
    ctx.notes["rewound_records"] = ctx.notes.get("rewound_records", 0) + rewound
    ctx.faults["group_rewind"] += 1
    ctx.log(f"group_rewind: {name} re-read {rewound} records of {len(moves)} partitions")


FAULTS: dict[str, Fault] = {
    "duplicate_commands": duplicate_commands,
    "duplicate_replies": duplicate_replies,
    "stale_replies": stale_replies,
    "group_rewind": group_rewind,
}
