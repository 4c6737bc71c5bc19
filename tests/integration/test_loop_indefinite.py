"""A commit cut off by the network: the loop re-initialises and agrees with Kafka.

The loop's clients reach the broker through the fault proxy. At a transaction commit
(the EndTxn request) the proxy blackholes either before the request reaches the broker
(the transaction never commits) or just after it (the broker commits, the loop never
hears). Either way the loop must survive, find out what Kafka committed, and end with
every input's effect produced exactly once and local state equal to what it produced.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Hashable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sagas.chaos.faults.network import END_TXN, RequestWatcher
from sagas.chaos.proxy import FaultProxy
from sagas.dev.broker import DevKafka
from sagas.runtime.transport.kafka import KafkaTransport
from sagas.runtime.transport.records import Consumed, Delivered, OutRecord
from sagas.runtime.units import Decided
from tests.chaos.proxied import proxied_broker
from tests.integration.engine_support import wait_for
from tests.loop_support import defer_busy, relay_loop

pytestmark = pytest.mark.kafka

KEYS = 5


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevKafka]:
    with proxied_broker(tmp_path_factory.mktemp("indefinite-kafka")) as b:
        yield b


@pytest.fixture
async def proxy(broker: DevKafka) -> AsyncIterator[FaultProxy]:
    async with FaultProxy("127.0.0.1", broker.port, broker.proxy_port) as p:
        yield p


class Summer:
    """Keeps a running sum per key; local state changes only after a commit.

    Like the engine's worker: each batch produces one output per input (the new sum)
    and one changelog record per key, in the unit's transaction; `take` catches the
    local state up from the changelog (read_committed), from where it had got to.
    """

    def __init__(self, servers: str, out: str, changelog: str) -> None:
        self.servers = servers
        self.out = out
        self.changelog = changelog
        self.sums: dict[bytes, int] = defaultdict(int)
        self.changelog_next = 0
        self.caught_up = 0

    async def take(self, k: int) -> None:
        log_tp = TopicPartition(self.changelog, k)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.servers,
            isolation_level="read_committed",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            consumer.assign([log_tp])
            end = (await consumer.end_offsets([log_tp]))[log_tp]
            consumer.seek(log_tp, self.changelog_next)
            while await consumer.position(log_tp) < end:
                for record in (await consumer.getmany(log_tp, timeout_ms=500)).get(log_tp, []):
                    assert record.key is not None
                    assert record.value is not None
                    self.sums[record.key] = int(record.value)
                    self.caught_up += 1
            self.changelog_next = end
        finally:
            await consumer.stop()

    def give_up(self, k: int) -> None:
        pass

    async def decide(
        self, k: int, records: Sequence[Consumed], busy: AbstractSet[Hashable] = frozenset()
    ) -> Decided:
        sums = dict(self.sums)
        out: list[OutRecord] = []
        kept, deferred = defer_busy(records, busy)
        for r in kept:
            assert r.key is not None
            assert r.value is not None
            sums[r.key] = sums.get(r.key, 0) + int(r.value)
            value = f"{r.offset}:{int(r.value)}:{sums[r.key]}".encode()
            out.append(OutRecord(self.out, value, key=r.key))
        changed = {r.key: sums[r.key] for r in kept if r.key is not None}
        for key, total in changed.items():
            out.append(OutRecord(self.changelog, str(total).encode(), key=key, partition=k))
        return Decided(outgoing=out, context=changed, deferred=deferred, touched=frozenset(changed))

    def dead_letter(self, k: int, record: Consumed, error: BaseException) -> Decided:
        raise AssertionError(f"no record should fail: {error!r}")

    async def tick(self, k: int) -> Decided | None:
        return None

    async def committed(self, k: int, decided: Decided, delivered: Sequence[Delivered]) -> None:
        assert isinstance(decided.context, dict)
        self.sums.update(decided.context)
        pairs = zip(decided.outgoing, delivered, strict=True)
        offsets = [m.offset for o, m in pairs if o.topic == self.changelog]
        self.changelog_next = max([self.changelog_next - 1, *offsets]) + 1


async def _topics(servers: str, *prefixes: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=servers)
    await admin.start()
    try:
        names = [f"{p}.{uuid.uuid4().hex[:10]}" for p in prefixes]
        await admin.create_topics([NewTopic(n, 1, 1) for n in names])
        return names
    finally:
        await admin.close()


async def _produce(servers: str, topic: str, values: range) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=servers, enable_idempotence=True)
    await producer.start()
    try:
        for i in values:
            await producer.send(topic, str(i).encode(), key=f"k{i % KEYS}".encode())
        await producer.flush()
    finally:
        await producer.stop()


async def _read_committed(servers: str, topic: str, n: int) -> list[tuple[int, int, int]]:
    """(input offset, input value, sum) of every committed output; waits for ``n``."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=servers,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    out: list[tuple[int, int, int]] = []
    try:
        async with asyncio.timeout(60):
            while len(out) < n:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    out.extend(_parse(r.value) for r in records)
        # Anything beyond n would be a duplicate: give it one more poll to show up.
        for records in (await consumer.getmany(timeout_ms=1500)).values():
            out.extend(_parse(r.value) for r in records)
    finally:
        await consumer.stop()
    return out


def _parse(value: bytes) -> tuple[int, int, int]:
    offset, v, total = value.decode().split(":")
    return int(offset), int(v), int(total)


@dataclass(frozen=True)
class Cut:
    """One way of cutting a commit off."""

    where: str
    """before: the EndTxn request is lost; after: the broker commits, its answer is lost."""
    hold_s: float
    """How long the blackhole lasts once the loop has found its commit in doubt."""
    session_s: float
    """The consumer's session timeout (shorter than the blackhole: it leaves the group)."""
    resets: bool
    """Reset every connection for a while after the heal, while records arrive."""


CUTS = {
    "before": Cut("before", hold_s=4, session_s=10, resets=False),
    "after": Cut("after", hold_s=4, session_s=10, resets=False),
    "after-past-the-session-then-resets": Cut("after", hold_s=9, session_s=6, resets=True),
}


@pytest.mark.timeout(240)
@pytest.mark.parametrize("name", list(CUTS))
async def test_a_commit_cut_off_by_a_blackhole_is_resolved_from_kafka(
    broker: DevKafka, proxy: FaultProxy, name: str
) -> None:
    cut = CUTS[name]
    src, dst, changelog = await _topics(broker.direct_servers, "in", "out", "changelog")
    summer = Summer(broker.bootstrap_servers, dst, changelog)
    loop = relay_loop(
        KafkaTransport(broker.bootstrap_servers),
        f"g-{uuid.uuid4().hex[:8]}",
        [src],
        summer,
        f"sum-{uuid.uuid4().hex[:8]}",
        session_timeout=timedelta(seconds=cut.session_s),
        commit_timeout=timedelta(seconds=3),
        max_batch=10,
    )

    async def summed(n: int) -> bool:
        return sum(summer.sums.values()) == sum(range(n))

    cut_at: list[int] = []

    def on_request(cid: int, api_key: int) -> None:
        if api_key != END_TXN or cut_at:
            return
        cut_at.append(cid)
        if cut.where == "after":  # the broker gets the commit; its answer is lost
            asyncio.get_running_loop().call_soon(proxy.blackhole)
        else:  # the commit request itself is lost
            proxy.blackhole()

    async with asyncio.TaskGroup() as tg:
        running = tg.create_task(loop.run())
        await _produce(broker.direct_servers, src, range(0, 40))
        await wait_for(lambda: summed(40), 60, "the first 40 records")
        watcher = RequestWatcher(on_request)
        proxy.add_tap(watcher)
        await _produce(broker.direct_servers, src, range(40, 80))

        async def doubtful() -> bool:
            return bool(loop.in_doubt)

        await wait_for(doubtful, 60, "the loop to find its commit in doubt")
        # Still cut off: producer starts fail and are retried, the loop runs on.
        await asyncio.sleep(cut.hold_s)  # the blackhole's remaining length (the fault)
        assert not running.done()
        proxy.remove_tap(watcher)
        proxy.heal()
        await wait_for(lambda: summed(80), 90, "all 80 records after the heal")
        if cut.resets:
            proxy.reset()
        await _produce(broker.direct_servers, src, range(80, 100))
        if cut.resets:
            await asyncio.sleep(1.5)  # the length of the reset fault
            proxy.heal()
        await wait_for(lambda: summed(100), 90, "records produced after the heal")
        assert not running.done()  # the loop survived the indefinite error
        loop.stop()

    expected = "not_committed" if cut.where == "before" else "committed"
    if cut.session_s < cut.hold_s:
        # The group may take the partition away before the loop settles it itself.
        assert loop.doubts[expected] + loop.doubts["handed_over"] >= 1, loop.doubts
    else:
        assert loop.doubts[expected] >= 1, loop.doubts
    outputs = await _read_committed(broker.direct_servers, dst, 100)
    # Every input's effect exactly once ...
    assert Counter(o for o, _, _ in outputs) == Counter(range(100))
    # ... each decided on the state left by the inputs before it (none lost, none twice) ...
    running_sums: dict[int, int] = defaultdict(int)
    for offset, value, total in sorted(outputs):
        running_sums[value % KEYS] += value
        assert total == running_sums[value % KEYS], (offset, value, total)
    # ... and local state equals what Kafka holds.
    assert dict(summer.sums) == {f"k{k}".encode(): s for k, s in running_sums.items()}
