"""Poison messages on every topic the system consumes.

Consumed topics, found from the code and the running processes: each saga inbox (the
engines), the domain event topics the router follows, and each running participant's
command topic and followed event topics. Each gets one record of every poison kind:

* ``random_bytes``: random bytes under valid headers (not the wire format);
* ``truncated_avro``: a valid message cut short (magic byte and schema id intact);
* ``unknown_schema``: a valid body behind a schema id no registry has;
* ``missing_headers``: a valid value with no headers at all;
* ``forged_type``: ``ce_type`` names another message type than the schema id's;
* ``bad_ce_id``: a ``ce_id`` that is not UTF-8;
* ``oversized``: larger than the consumers' payload limit (``SAGAS_MAX_PAYLOAD_BYTES``)
  but under the topic's ``max.message.bytes``, so Kafka accepts it; left out, with a
  note, when the limit leaves no such room;
* ``max_size``: a bad value as large as Kafka takes (the topic's ``max.message.bytes``
  and a client's default request limit): its dead-letter copy, with the reason headers
  added, is larger than the original.

Each record has a unique key (``chaos-poison:<kind>:<hex>``), recorded in
``ctx.poison[topic]``: the dead-letter check (`sagas.chaos.checks.dlq`) finds each one
in a dead-letter topic, with its reason.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from sagas.chaos.faults.base import ChaosContext, Fault
from sagas.chaos.faults.messages import list_topics
from sagas.contracts.codec import PREFIX_BYTES
from sagas.contracts.headers import Headers
from sagas.contracts.record import Envelope
from sagas.runtime import topics
from sagas.runtime.engine import by_name
from sagas.runtime.router import event_topics
from services.app import app as examples
from services.definitions import all_definitions
from services.messages.inventory import StockReleased
from services.messages.payments import PaymentVoided

KEY_PREFIX = "chaos-poison"
DEFAULT_LIMIT = 1024 * 1024
BROKER_DEFAULT_MAX = 1048588
"""Kafka's default ``message.max.bytes`` (a topic's ``max.message.bytes`` default)."""
BATCH_OVERHEAD = 16 * 1024
"""Room left for the record batch, the headers and the dead-letter headers."""
CLIENT_REQUEST_MAX = 1048576
"""aiokafka's (and faust's) default ``max_request_size``: what the consumers' own
producers accept, dead letters included."""
MAX_SIZE_SLACK = 64


def consumed_topics(ctx: ChaosContext, existing: set[str]) -> list[str]:
    """The physical topics some running part of the system consumes.

    ``sagas.events`` counts only when the run follows it with a read model (which
    dead-letters to ``sagas.readmodel.dlq``): the runner says so with
    ``ctx.notes["read_model"] = True``. The changelogs are the engines' own state, not
    input, and get no poison.
    """
    p = ctx.prefix
    logical: set[str] = set()
    if ctx.engines:
        running = [d for d in all_definitions() if p + topics.inbox(d.name) in existing]
        logical.update(topics.inbox(d.name) for d in running)
        logical.update(event_topics(by_name(running)))
    if ctx.notes.get("read_model"):
        logical.add(topics.OUTCOMES)
    for participant in examples.participants:
        if participant.name not in ctx.services:
            continue
        if participant.handlers:
            logical.add(topics.commands(participant.name))
        logical.update(s.topic for s in participant.subscriptions)
    return sorted(p + t for t in logical if p + t in existing)


def payload_limit(ctx: ChaosContext) -> int:
    """The largest value the consumers accept (the environment they were started with)."""
    text = ctx.system.layout.extra_env.get("SAGAS_MAX_PAYLOAD_BYTES") or os.environ.get(
        "SAGAS_MAX_PAYLOAD_BYTES"
    )
    return int(text) if text else DEFAULT_LIMIT


async def broker_limits(servers: str, names: list[str]) -> dict[str, int]:
    """``max.message.bytes`` of each topic."""
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        resources = [ConfigResource(ConfigResourceType.TOPIC, n) for n in names]
        found: dict[str, int] = {}
        for response in await admin.describe_configs(resources):
            for _code, _msg, _type, name, entries in response.resources:
                for entry in entries:
                    if entry[0] == "max.message.bytes":
                        found[name] = int(entry[1])
        return found
    finally:
        await admin.close()


class PoisonMaker:
    """Builds poison records from one valid message of the contracts."""

    def __init__(self, ctx: ChaosContext) -> None:
        self._ctx = ctx
        tag = ctx.rng.getrandbits(64).to_bytes(8, "big").hex()
        payload = StockReleased(order_id=f"chaos-{tag}", reservation_id=f"chaos-res-{tag}")
        envelope = Envelope(
            id=f"chaos-{tag}",
            type=payload.SCHEMA,
            source="/chaos/poison",
            time=datetime.now(UTC),
            payload=payload,
        )
        self.headers, self.value = ctx.codec.encode(envelope)

    def _with(self, name: str, value: bytes) -> Headers:
        return [(k, value if k == name else v) for k, v in self.headers]

    def random_bytes(self) -> tuple[Headers, bytes]:
        size = self._ctx.rng.randint(8, 200)  # at least the wire prefix: a bad magic byte
        return self.headers, bytes([0x7F]) + self._ctx.rng.randbytes(size)

    def truncated_avro(self) -> tuple[Headers, bytes]:
        cut = self._ctx.rng.randint(PREFIX_BYTES + 1, len(self.value) - 2)
        return self.headers, self.value[:cut]

    def unknown_schema(self) -> tuple[Headers, bytes]:
        unknown = (0x7FFF0000 + self._ctx.rng.randint(0, 0xFFFF)).to_bytes(4, "big")
        return self.headers, self.value[:1] + unknown + self.value[PREFIX_BYTES:]

    def missing_headers(self) -> tuple[Headers, bytes]:
        return [], self.value

    def forged_type(self) -> tuple[Headers, bytes]:
        return self._with("ce_type", PaymentVoided.SCHEMA.encode()), self.value

    def bad_ce_id(self) -> tuple[Headers, bytes]:
        return self._with("ce_id", b"\xff\xfe" + self._ctx.rng.randbytes(6)), self.value

    def oversized(self, size: int) -> tuple[Headers, bytes]:
        return self.headers, self.value[:PREFIX_BYTES] + self._ctx.rng.randbytes(size)

    def max_size(self, key: str, limit: int) -> tuple[Headers, bytes]:
        """A value whose record is ``MAX_SIZE_SLACK`` bytes under ``limit``, serialized."""
        empty = DefaultRecordBatchBuilder.estimate_size_in_bytes(key.encode(), b"", self.headers)
        size = limit - MAX_SIZE_SLACK - empty - PREFIX_BYTES
        return self.oversized(size)


def poison_key(ctx: ChaosContext, kind: str) -> str:
    return f"{KEY_PREFIX}:{kind}:{uuid.UUID(int=ctx.rng.getrandbits(128)).hex}"


async def poison(ctx: ChaosContext) -> None:
    """Send one record of every poison kind to every consumed topic."""
    existing = await list_topics(ctx.direct_servers)
    names = consumed_topics(ctx, existing)
    if not names:
        ctx.log("poison: no consumed topic found")
        return
    maker = PoisonMaker(ctx)
    limit = payload_limit(ctx)
    maxima = await broker_limits(ctx.direct_servers, names)
    kinds: list[tuple[str, Callable[[], tuple[Headers, bytes]]]] = [
        ("random_bytes", maker.random_bytes),
        ("truncated_avro", maker.truncated_avro),
        ("unknown_schema", maker.unknown_schema),
        ("missing_headers", maker.missing_headers),
        ("forged_type", maker.forged_type),
        ("bad_ce_id", maker.bad_ce_id),
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=ctx.direct_servers,
        enable_idempotence=True,
        max_request_size=max(limit * 2, DEFAULT_LIMIT) + BATCH_OVERHEAD,
    )
    await producer.start()
    sent = 0
    try:
        for name in names:
            room = maxima.get(name, BROKER_DEFAULT_MAX) - BATCH_OVERHEAD
            todo: list[tuple[str, Callable[[], tuple[Headers, bytes]]]] = list(kinds)
            if limit + 1 <= room:
                todo.append(("oversized", lambda: maker.oversized(limit + 1 - PREFIX_BYTES)))
            else:
                ctx.notes["poison_oversized_skipped"] = (
                    f"payload limit {limit} leaves no room under max.message.bytes of {name}"
                )
            for kind, make in todo:
                sent += await _send(ctx, producer, name, poison_key(ctx, kind), *make())
            key = poison_key(ctx, "max_size")
            biggest = min(maxima.get(name, BROKER_DEFAULT_MAX), CLIENT_REQUEST_MAX)
            sent += await _send(ctx, producer, name, key, *maker.max_size(key, biggest))
        await producer.flush()
    finally:
        await producer.stop()
    ctx.faults["poison"] += 1
    ctx.log(f"poison: {sent} records on {len(names)} topics")


async def _send(
    ctx: ChaosContext, producer: Any, topic: str, key: str, headers: Headers, value: bytes
) -> int:
    try:
        await producer.send_and_wait(topic, value, key=key.encode(), headers=headers)
    except KafkaError as exc:  # refused by the broker: not in the topic, expect no DLQ
        ctx.log(f"poison: {key} on {topic} refused: {exc!r}")
        return 0
    ctx.poison.setdefault(topic, []).append(key)
    return 1


FAULTS: dict[str, Fault] = {"poison": poison}
