"""What the engine and the services need from a Kafka broker, one check each.

Every check takes a `CheckContext`, talks to the broker with aiokafka, raises
`CheckFailed` (or the client's own error) when the broker does not behave, and returns
a short note on what it saw. Checks wait for conditions, never for time; the caller
bounds each one with a deadline, and `CheckContext.step` says what a check was waiting
for when the deadline struck.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class CheckFailed(Exception):
    """The broker answered, but not as the check expected."""


@dataclass
class CheckContext:
    """The broker under test and the check's progress."""

    bootstrap: str
    workdir: Path
    current_step: str = field(default="starting", init=False)

    def step(self, text: str) -> None:
        self.current_step = text


CheckFn = Callable[[CheckContext], Awaitable[str]]


@dataclass(frozen=True)
class Check:
    """A named check."""

    name: str
    run: CheckFn


def _unique(prefix: str) -> str:
    return f"compat.{prefix}.{uuid.uuid4().hex[:10]}"


async def create_topics(bootstrap: str, *names: str, partitions: int = 1) -> None:
    """Create ``names``, each with ``partitions`` partitions and one replica."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()


async def read_to_end(bootstrap: str, topic: str, *, committed_only: bool = True) -> list[bytes]:
    """Every value of partition 0 of ``topic`` up to its end offset, in order.

    With ``committed_only`` the consumer reads ``read_committed``, and the end offset it
    stops at is the last stable offset: what a transaction left open is not there yet.
    """
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed" if committed_only else "read_uncommitted",
        enable_auto_commit=False,
    )
    await consumer.start()
    values: list[bytes] = []
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end: int = (await consumer.end_offsets([tp]))[tp]
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=500)
            values.extend(r.value for r in batch.get(tp, []))
    finally:
        await consumer.stop()
    return values


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


async def check_idempotent_producer(ctx: CheckContext) -> str:
    from aiokafka import AIOKafkaProducer

    topic = _unique("idempotent")
    await create_topics(ctx.bootstrap, topic)
    ctx.step("producing with enable_idempotence=True")
    sent = [f"v{i}".encode() for i in range(20)]
    async with AIOKafkaProducer(bootstrap_servers=ctx.bootstrap, enable_idempotence=True) as p:
        for value in sent:
            await p.send_and_wait(topic, value, key=b"k")
    ctx.step("reading back")
    got = await read_to_end(ctx.bootstrap, topic)
    expect(got == sent, f"read back {got!r}, expected v0..v19 in order")
    return f"{len(sent)} records, in order, no duplicates"


async def check_transactions(ctx: CheckContext) -> str:
    from aiokafka import AIOKafkaProducer

    topic = _unique("txn")
    await create_topics(ctx.bootstrap, topic)
    ctx.step("initialising the transactional producer (InitProducerId)")
    async with AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap, transactional_id=_unique("txn-id")
    ) as producer:
        ctx.step("commit, abort, commit")
        async with producer.transaction():
            await producer.send(topic, b"c1")
            await producer.send(topic, b"c2")
        await producer.begin_transaction()
        await (await producer.send(topic, b"aborted"))
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send(topic, b"c3")
    ctx.step("reading back read_committed and read_uncommitted")
    committed = await read_to_end(ctx.bootstrap, topic)
    everything = await read_to_end(ctx.bootstrap, topic, committed_only=False)
    expect(committed == [b"c1", b"c2", b"c3"], f"read_committed saw {committed!r}")
    expect(b"aborted" in everything, f"read_uncommitted saw {everything!r}: abort not written")
    return "read_committed: c1 c2 c3; the aborted record only under read_uncommitted"


async def check_read_committed_waits(ctx: CheckContext) -> str:
    from aiokafka import AIOKafkaProducer

    topic = _unique("lso")
    await create_topics(ctx.bootstrap, topic)
    async with AIOKafkaProducer(
        bootstrap_servers=ctx.bootstrap, transactional_id=_unique("lso-id")
    ) as producer:
        await producer.begin_transaction()
        ctx.step("writing inside an open transaction")
        await (await producer.send(topic, b"pending"))
        # The transaction is open: its record is in the log but not yet stable.
        pending_committed = await read_to_end(ctx.bootstrap, topic)
        pending_all = await read_to_end(ctx.bootstrap, topic, committed_only=False)
        await producer.commit_transaction()
    ctx.step("reading after commit")
    after = await read_to_end(ctx.bootstrap, topic)
    expect(pending_committed == [], f"read_committed saw {pending_committed!r} before commit")
    expect(pending_all == [b"pending"], f"read_uncommitted saw {pending_all!r} before commit")
    expect(after == [b"pending"], f"read_committed saw {after!r} after commit")
    return "open transaction hidden until commit (last stable offset holds)"


async def check_send_offsets(ctx: CheckContext) -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    source, sink, group = _unique("sot-in"), _unique("sot-out"), _unique("sot-group")
    await create_topics(ctx.bootstrap, source, sink)
    async with AIOKafkaProducer(bootstrap_servers=ctx.bootstrap) as plain:
        for i in range(3):
            await plain.send_and_wait(source, f"m{i}".encode())
    tp = TopicPartition(source, 0)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=ctx.bootstrap,
        group_id=group,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    async with (
        consumer,
        AIOKafkaProducer(
            bootstrap_servers=ctx.bootstrap, transactional_id=_unique("sot-id")
        ) as producer,
    ):
        ctx.step("consuming as a group member")
        records: list[Any] = []
        while len(records) < 3:
            records.extend((await consumer.getmany(timeout_ms=500)).get(tp, []))
        ctx.step("consume-transform-produce transaction with the consumed offsets")
        async with producer.transaction():
            for r in records:
                await producer.send(sink, r.value.upper())
            await producer.send_offsets_to_transaction({tp: records[-1].offset + 1}, group)
        ctx.step("aborting a transaction that holds offset 1")
        await producer.begin_transaction()
        await producer.send_offsets_to_transaction({tp: 1}, group)
        await producer.abort_transaction()
        ctx.step("waiting for the group's committed offset to become 3")
        while (committed := await consumer.committed(tp)) != 3:
            expect(committed in (None, 3), f"group offset is {committed}, expected 3")
    out = await read_to_end(ctx.bootstrap, sink)
    expect(out == [b"M0", b"M1", b"M2"], f"sink holds {out!r}")
    return "output and group offset 3 committed together; aborted offsets discarded"


async def check_fencing(ctx: CheckContext) -> str:
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import ProducerFenced

    topic, txn_id = _unique("fence"), _unique("fence-id")
    await create_topics(ctx.bootstrap, topic)
    async with AIOKafkaProducer(bootstrap_servers=ctx.bootstrap, transactional_id=txn_id) as old:
        await old.begin_transaction()
        await (await old.send(topic, b"stale"))
        ctx.step("a second producer with the same transactional id")
        async with AIOKafkaProducer(
            bootstrap_servers=ctx.bootstrap, transactional_id=txn_id
        ) as new:
            async with new.transaction():
                await new.send(topic, b"fresh")
            ctx.step("committing with the stale producer")
            try:
                await old.commit_transaction()
            except ProducerFenced:
                pass
            else:
                raise CheckFailed("the stale producer committed after being replaced")
    got = await read_to_end(ctx.bootstrap, topic)
    expect(got == [b"fresh"], f"read_committed saw {got!r}")
    return "stale producer fenced (ProducerFenced); its open transaction aborted"


async def check_group_split(ctx: CheckContext) -> str:
    from aiokafka import AIOKafkaConsumer

    topic, group = _unique("split"), _unique("split-group")
    await create_topics(ctx.bootstrap, topic, partitions=4)
    members = [
        AIOKafkaConsumer(topic, bootstrap_servers=ctx.bootstrap, group_id=group) for _ in range(2)
    ]
    async with members[0], members[1]:
        ctx.step("waiting until both members hold disjoint partitions covering all four")
        while True:
            await asyncio.gather(*(m.getmany(timeout_ms=200) for m in members))
            a, b = ({tp.partition for tp in m.assignment()} for m in members)
            if a and b and not a & b and a | b == {0, 1, 2, 3}:
                return f"member 1: {sorted(a)}, member 2: {sorted(b)}"


async def check_group_resume(ctx: CheckContext) -> str:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic, group = _unique("resume"), _unique("resume-group")
    await create_topics(ctx.bootstrap, topic)
    async with AIOKafkaProducer(bootstrap_servers=ctx.bootstrap) as producer:
        for i in range(10):
            await producer.send_and_wait(topic, f"r{i}".encode())
    tp = TopicPartition(topic, 0)

    def member() -> Any:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=ctx.bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )

    ctx.step("first member reads 4 records and commits")
    async with member() as first:
        seen: list[Any] = []
        while len(seen) < 4:
            seen.extend(
                (await first.getmany(tp, timeout_ms=500, max_records=4 - len(seen))).get(tp, [])
            )
        await first.commit({tp: seen[-1].offset + 1})
    ctx.step("second member of the same group resumes")
    async with member() as second:
        batch: list[Any] = []
        while not batch:
            batch = (await second.getmany(timeout_ms=500)).get(tp, [])
    expect(batch[0].offset == 4, f"second member started at offset {batch[0].offset}")
    return "second member resumed at committed offset 4"


ALL_CHECKS: tuple[Check, ...] = (
    Check("idempotent producer", check_idempotent_producer),
    Check("transactions: commit visible, abort hidden", check_transactions),
    Check("read_committed hides open transactions", check_read_committed_waits),
    Check("send_offsets_to_transaction", check_send_offsets),
    Check("transactional id fences stale producer", check_fencing),
    Check("consumer group: members split partitions", check_group_split),
    Check("consumer group: committed offsets resume", check_group_resume),
)
