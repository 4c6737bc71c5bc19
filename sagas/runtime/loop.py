"""Consume -> decide -> produce, one Kafka transaction per partition batch.

`TransactionalLoop` owns one consumer (a member of a consumer group, ``read_committed``)
and, for every partition assigned to it, one transactional producer whose
``transactional_id`` is derived from the partition. When a partition moves to another
process, the new owner's producer initialises the same transactional id, which aborts
any transaction the old owner left open and fences the old producer: its late writes are
refused by the broker.

Per batch of one partition, in one transaction: everything the handler wants to send
(commands, outcome events, changelog records, dead letters) and the consumed offsets.
Only after the commit is acknowledged does the handler update its local state
(`PartitionHandler.committed`), so local state is never ahead of Kafka. The partitions
of one poll run their transactions at the same time (each has its own producer); the
next poll starts when all of them ended.

Partitions the group assigns are taken by the polling loop, not in the rebalance
listener: taking one (starting its producer, catching up its changelog) can outlast the
session timeout, and aiokafka sends no heartbeat while the listener runs.

After an indefinite error (a commit that outlasts ``commit_timeout``, a lost connection)
nobody knows whether the transaction committed. The partition's producer is abandoned
and the partition taken again as if newly assigned: a new producer initialises the same
transactional id, which makes the coordinator finish the old transaction one way or the
other (and fences the old producer); the handler catches up from its changelog (so a
committed batch's changes reach local state) and the consumer goes back to the group's
committed offset (so a batch that did not commit is decided again). Whichever way the
transaction went, local state then agrees with what Kafka holds. The process never
stops over it: taking the partition is retried until the broker answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Coroutine, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import IllegalOperation, IllegalStateError, KafkaError, ProducerFenced
from aiokafka.structs import RecordMetadata

from sagas.runtime.errors import RuntimeFailure
from sagas.runtime.producers import abandon

log = logging.getLogger(__name__)

DEFAULT_COMMIT_TIMEOUT = timedelta(seconds=15)
"""How long one transaction (begin, sends, offsets, commit) may take before its outcome
is treated as unknown; aiokafka itself retries an unanswered commit forever."""

DEFAULT_IDLE_TICK = timedelta(milliseconds=100)
"""How long a poll waits for input before the partitions' ticks run anyway."""

LINGER_MS = 5
"""How long a partition producer waits to fill a batch before sending it."""

TXN_RETRY_BACKOFF_MS = 10
"""Backoff of the partition producers' retries (see `TransactionalLoop._producer_for`)."""

RETRY_TAKE_S = 1.0
"""Pause before taking a partition again after starting its producer failed."""

Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Outgoing:
    """One record to produce inside the batch's transaction."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = field(default_factory=list)
    partition: int | None = None
    """Explicit partition (changelogs are co-partitioned with their inbox)."""


@dataclass
class Batch:
    """What the handler decided for a batch: records to send and its own context."""

    outgoing: list[Outgoing] = field(default_factory=list)
    context: Any = None
    """Passed back to `PartitionHandler.committed` once the transaction commits."""


class PartitionHandler(Protocol):
    """The logic the loop drives; one handler serves every partition of the loop."""

    async def assigned(self, tp: TopicPartition) -> None:
        """Prepare to process ``tp`` (e.g. catch up from the changelog).

        Every method may run for several partitions at once (one call per partition);
        calls for one partition never overlap.
        """

    async def revoked(self, tp: TopicPartition) -> None:
        """Forget local caches of ``tp``."""

    async def process(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[Any, Any]]
    ) -> Batch:
        """Decide on ``records``; must not raise for bad input (dead-letter it instead)."""

    async def dead_letter(
        self, tp: TopicPartition, record: ConsumerRecord[Any, Any], error: BaseException
    ) -> Batch:
        """A batch that moves ``record``, which made `process` raise, to a dead-letter topic."""

    async def tick(self, tp: TopicPartition) -> Batch | None:
        """Work not driven by input (due timers); None when there is none."""

    async def committed(
        self, tp: TopicPartition, batch: Batch, sent: Sequence[RecordMetadata]
    ) -> None:
        """The batch's transaction committed; ``sent`` is aligned with ``batch.outgoing``."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka is untyped
    def __init__(self, loop: TransactionalLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._loop._release(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        await self._loop._assigned(assigned)


class TransactionalLoop:
    """Drive a `PartitionHandler` over the partitions of ``topics`` this member owns.

    Args:
        bootstrap_servers: Kafka to connect to.
        group_id: consumer group shared by every process running this loop.
        topics: topics to consume.
        handler: the decision logic.
        transactional_prefix: stable prefix of the per-partition transactional ids.
        topic_prefix: prepended to every topic consumed and produced.
        client_options: extra keyword arguments for every aiokafka client (security).
        max_records: upper bound of a batch.
        idle_tick: how often `tick` runs when no input arrives.
        commit_timeout: bound of one transaction; beyond it the outcome is in doubt and
            the partition's producer is re-initialised (see the module docstring).
    """

    def __init__(
        self,
        bootstrap_servers: str,
        group_id: str,
        topics: Sequence[str],
        handler: PartitionHandler,
        transactional_prefix: str,
        *,
        client_options: dict[str, Any] | None = None,
        max_records: int = 500,
        idle_tick: timedelta = DEFAULT_IDLE_TICK,
        session_timeout: timedelta = timedelta(seconds=10),
        topic_prefix: str = "",
        commit_timeout: timedelta = DEFAULT_COMMIT_TIMEOUT,
    ) -> None:
        self._bootstrap = bootstrap_servers
        self._group_id = group_id
        # Handlers speak logical topic names; the prefix is added and removed here only.
        self._prefix_topics = topic_prefix
        self._topics = [topic_prefix + t for t in topics]
        self._handler = handler
        self._prefix = transactional_prefix
        self._options = client_options or {}
        self._max_records = max_records
        self._idle_ms = int(idle_tick.total_seconds() * 1000)
        self._session_ms = int(session_timeout.total_seconds() * 1000)
        self._heartbeat_ms = max(self._session_ms // 5, 500)
        self._commit_timeout_s = commit_timeout.total_seconds()
        self._producers: dict[TopicPartition, AIOKafkaProducer] = {}
        # The next offset to process per owned partition: records below it were fetched
        # before a rewind and are dropped, so nothing is processed twice by one owner.
        self._next: dict[TopicPartition, int] = {}
        # Partitions whose producer was fenced: not re-acquired until a rebalance
        # assigns them to us again.
        self._fenced: set[TopicPartition] = set()
        # Partitions whose last transaction ended in doubt, with the offset that batch
        # consumed up to (None for a tick): taken again by `run` as soon as it can.
        self._in_doubt: dict[TopicPartition, int | None] = {}
        self._retry_after: dict[TopicPartition, float] = {}
        # Held while a batch is in flight: a rebalance waits for the transaction to end.
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self.batches_committed = 0
        self.doubts: Counter[str] = Counter()
        """How in-doubt transactions turned out: committed, not_committed, unknown (a
        tick's), handed_over (revoked first: the next owner's initialisation settles it)."""

    @property
    def consumer(self) -> AIOKafkaConsumer | None:
        """The group member while `run` runs (for lag metrics; do not consume from it)."""
        return self._consumer

    @property
    def fenced(self) -> list[TopicPartition]:
        """Partitions given up because a newer owner fenced their producer."""
        return sorted(self._fenced, key=lambda tp: (tp.topic, tp.partition))

    @property
    def in_doubt(self) -> list[TopicPartition]:
        """Partitions whose last transaction's outcome is not known yet."""
        return sorted(self._in_doubt, key=lambda tp: (tp.topic, tp.partition))

    @property
    def owned(self) -> list[TopicPartition]:
        return sorted(self._producers, key=lambda tp: (tp.topic, tp.partition))

    def stop(self) -> None:
        """Ask `run` to return after the batch in flight; idempotent."""
        self._stopping.set()

    async def run(self) -> None:
        """Consume until `stop`; always leaves Kafka clients closed."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            group_id=self._group_id,
            isolation_level="read_committed",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self._session_ms,
            heartbeat_interval_ms=self._heartbeat_ms,
            # An idle fetch waits no longer than a tick: requests such as a rewind's
            # offset lookup queue behind it on the connection (default 500 ms).
            fetch_max_wait_ms=self._idle_ms,
            **self._options,
        )
        self._consumer = consumer
        consumer.subscribe(self._topics, listener=_Listener(self))
        await consumer.start()
        try:
            while not self._stopping.is_set():
                data = await consumer.getmany(
                    timeout_ms=self._idle_ms, max_records=self._max_records
                )
                # Partitions the group gave us are taken here, not in the rebalance
                # listener (see `_assigned`); so are those whose taking failed earlier.
                # Taking rewinds to the committed offset, so nothing fetched is lost.
                now = time.monotonic()
                missing = [
                    tp
                    for tp in consumer.assignment()
                    if tp not in self._producers
                    and tp not in self._fenced
                    and self._retry_after.get(tp, 0.0) <= now
                ]
                if missing:
                    await self._acquire(missing)
                work = {tp: records for tp, records in data.items() if tp not in missing}
                await self._run_poll(work)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling() == 0:
                # Not our cancellation: a client's internal task leaked its own. Ending
                # "cancelled" would be ignored by the engine's TaskGroup and leave a
                # process that runs but consumes nothing; fail loudly instead.
                raise RuntimeFailure(
                    "the consuming loop was cancelled from inside a Kafka client"
                ) from None
            raise
        finally:
            async with self._lock:
                await self._close_producers(list(self._producers))
            await consumer.stop()
            self._consumer = None

    # -- batches --------------------------------------------------------------------

    async def _run_poll(self, data: dict[TopicPartition, list[ConsumerRecord[Any, Any]]]) -> None:
        """Each owned partition's batch, then its tick, all partitions at once.

        A transaction is a handful of broker round trips; run one partition after the
        other, a poll over many partitions took the sum of them. Partitions share no
        state, each has its own producer, so their transactions overlap. The lock is
        held for the whole poll: a rebalance waits until every transaction has ended,
        and the next poll starts only once every batch of this one reached the store.
        """
        async with self._lock:
            results = await asyncio.gather(
                *(self._partition(tp, data.get(tp, [])) for tp in self.owned),
                return_exceptions=True,
            )
        for result in results:
            if isinstance(result, BaseException):
                raise result  # what the partition's work raised, as it would run alone

    async def _partition(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        if records:
            await self._run_batch(tp, records)
        await self._run_tick(tp)

    async def _run_batch(self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]]) -> None:
        if tp not in self._producers:
            return  # given up (fenced, in doubt) earlier in this poll
        records = [r for r in records if r.offset >= self._next.get(tp, 0)]
        if not records:
            return
        try:
            batch = await self._handler.process(self._logical(tp), records)
        except Exception as exc:  # a handler bug must not stop the partition
            log.exception("processing %s failed; retrying record by record", tp)
            await self._isolate(tp, records, exc)
            return
        await self._commit(tp, batch, consumed_until=records[-1].offset + 1)

    async def _isolate(
        self, tp: TopicPartition, records: list[ConsumerRecord[Any, Any]], first: Exception
    ) -> None:
        for record in records:
            try:
                batch = await self._handler.process(self._logical(tp), [record])
            except Exception as exc:
                batch = await self._handler.dead_letter(self._logical(tp), record, exc)
            if not await self._commit(tp, batch, consumed_until=record.offset + 1):
                return

    async def _run_tick(self, tp: TopicPartition) -> None:
        if tp not in self._producers:
            return
        batch = await self._handler.tick(self._logical(tp))
        if batch is not None:
            await self._commit(tp, batch, consumed_until=None)

    async def _commit(self, tp: TopicPartition, batch: Batch, consumed_until: int | None) -> bool:
        """Send the batch and the offsets in one transaction; False if the partition is lost."""
        producer = self._producers[tp]
        futures: list[asyncio.Future[RecordMetadata]] = []
        try:
            work = self._transaction(producer, tp, batch, consumed_until, futures)
            sent = await self._bounded(work)
        except (ProducerFenced, IllegalOperation) as exc:
            # Fenced: a newer owner initialised this partition's transactional id (we
            # are a zombie, e.g. dropped from the group while busy). aiokafka reports it
            # as IllegalOperation once its background sender has seen the fence. Our
            # writes are refused; give the partition up until a rebalance hands it back,
            # and never re-initialise here: that would fence the rightful owner.
            log.warning("producer for %s was fenced (%r): another process owns it now", tp, exc)
            _retrieve(futures)
            await self._close_producers([tp])
            self._fenced.add(tp)
            if self._consumer is not None and tp in self._consumer.assignment():
                self._consumer.pause(tp)
            return False
        except (KafkaError, TimeoutError) as exc:
            # Indefinite: we cannot know whether the transaction committed. Start over
            # from what Kafka holds.
            await self._doubt(tp, producer, consumed_until, exc)
            _retrieve(futures)
            return False
        self.batches_committed += 1
        if consumed_until is not None:
            self._next[tp] = consumed_until
        await self._handler.committed(self._logical(tp), batch, sent)
        return True

    async def _transaction(
        self,
        producer: AIOKafkaProducer,
        tp: TopicPartition,
        batch: Batch,
        consumed_until: int | None,
        futures: list[asyncio.Future[RecordMetadata]],
    ) -> list[RecordMetadata]:
        await producer.begin_transaction()
        for o in batch.outgoing:
            futures.append(
                await producer.send(
                    self._prefix_topics + o.topic,
                    o.value,
                    key=o.key,
                    headers=o.headers,
                    partition=o.partition,
                )
            )
        if consumed_until is not None:
            await producer.send_offsets_to_transaction({tp: consumed_until}, self._group_id)
        await producer.commit_transaction()
        return [await f for f in futures]

    async def _bounded(
        self, work: Coroutine[Any, Any, list[RecordMetadata]]
    ) -> list[RecordMetadata]:
        """Run ``work`` within the commit timeout; TimeoutError when it outlasts it."""
        task = asyncio.ensure_future(work)
        try:
            await asyncio.wait({task}, timeout=self._commit_timeout_s)
            if not task.done():
                # A second look: a process paused past the deadline (SIGSTOP) finds its
                # answer (often: fenced) at once, rather than treating it as in doubt.
                await asyncio.wait({task}, timeout=1.0)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, KafkaError):
                    await task
        if task.cancelled():
            raise TimeoutError(f"the transaction outlasted {self._commit_timeout_s:.0f}s")
        return task.result()

    # -- ownership ------------------------------------------------------------------

    def _transactional_id(self, tp: TopicPartition) -> str:
        return f"{self._prefix}.{tp.topic}.{tp.partition}"

    def _producer_for(self, tp: TopicPartition) -> AIOKafkaProducer:
        options: dict[str, Any] = {
            # Requests end within the commit bound, so an abandoned producer winds down
            # soon after it is dropped.
            "request_timeout_ms": int(self._commit_timeout_s * 1000),
            **self._options,
        }
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            transactional_id=self._transactional_id(tp),
            linger_ms=LINGER_MS,
            # A transaction begun right after the previous one committed is refused
            # (CONCURRENT_TRANSACTIONS) until the broker has written the commit markers,
            # a few ms; aiokafka retries after this backoff (default 100 ms, which was
            # the p99 of a transaction).
            retry_backoff_ms=TXN_RETRY_BACKOFF_MS,
            **options,
        )

    async def _assigned(self, assigned: list[TopicPartition]) -> None:
        """Rebalance listener: note what the group gave us; `run` takes it next.

        Taking a partition means catching up its changelog, which for a large partition
        takes longer than the session timeout, and aiokafka sends no heartbeat until the
        listener returns: taken here, the member would be dropped from the group and the
        rebalance start over, for ever. So the listener only pauses the new partitions
        (nothing of them is fetched before they are taken), and `run` takes them while
        heartbeats go on.
        """
        async with self._lock:
            # Fenced, then given to us again: ours for real now.
            self._fenced -= set(assigned)
            if self._consumer is not None:
                self._consumer.pause(*(tp for tp in assigned if tp not in self._producers))

    async def _acquire(self, assigned: list[TopicPartition]) -> None:
        async with self._lock:
            # A rebalance may have taken some away since.
            current = self._consumer.assignment() if self._consumer is not None else None
            new = [
                tp
                for tp in assigned
                if tp not in self._producers and (current is None or tp in current)
            ]
            producers = {tp: self._producer_for(tp) for tp in new}
            # start() initialises the transactional id: the previous owner's open
            # transaction is aborted and its producer fenced before we read anything.
            # Concurrently: taking many partitions after a rebalance costs one start,
            # not the sum of them.
            started = await asyncio.gather(*(self._start(tp, p) for tp, p in producers.items()))
            # Concurrently too: the handler's catch-ups take turns, the rewinds overlap.
            await asyncio.gather(
                *(
                    self._take(tp, producer)
                    for (tp, producer), ok in zip(producers.items(), started, strict=True)
                    if ok
                )
            )
            log.info("owning %s", ", ".join(f"{t.topic}[{t.partition}]" for t in self.owned))

    async def _start(self, tp: TopicPartition, producer: AIOKafkaProducer) -> bool:
        """Start ``producer``; on failure drop it and let `run` try again shortly."""
        try:
            async with asyncio.timeout(self._commit_timeout_s):
                await producer.start()
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning(
                "starting the producer of %s (transactional id %s) failed (%r); will retry",
                tp,
                self._transactional_id(tp),
                exc,
            )
            await abandon(producer)
            self._retry_after[tp] = time.monotonic() + RETRY_TAKE_S
            return False
        return True

    async def _take(self, tp: TopicPartition, producer: AIOKafkaProducer) -> None:
        """Own ``tp``: local state caught up, position at the group's committed offset."""
        self._producers[tp] = producer
        try:
            await self._handler.assigned(self._logical(tp))
            # Bounded, as everything under the lock: a coordinator that does not answer
            # must not keep the rebalance listener (and so the group) waiting.
            async with asyncio.timeout(self._commit_timeout_s):
                committed = await self._rewind(tp)
        except IllegalStateError:  # revoked meanwhile: the next owner has it
            await self._close_producers([tp])
            return
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("taking %s failed (%r); will retry", tp, exc)
            await self._close_producers([tp])
            self._retry_after[tp] = time.monotonic() + RETRY_TAKE_S
            return
        self._retry_after.pop(tp, None)
        if tp in self._in_doubt:
            self._resolved(tp, committed)
        if self._consumer is not None and tp in self._consumer.assignment():
            self._consumer.resume(tp)

    async def _release(self, revoked: list[TopicPartition]) -> None:
        async with self._lock:
            self._fenced -= set(revoked)
            for tp in revoked:
                self._retry_after.pop(tp, None)
                if tp in self._in_doubt:
                    del self._in_doubt[tp]
                    self.doubts["handed_over"] += 1
                    log.warning(
                        "in-doubt transaction on %s (transactional id %s): partition revoked "
                        "before it was settled; its next owner settles it",
                        tp,
                        self._transactional_id(tp),
                    )
            await self._close_producers(revoked)

    async def _close_producers(self, tps: list[TopicPartition]) -> None:
        for tp in tps:
            producer = self._producers.pop(tp, None)
            self._next.pop(tp, None)
            if producer is None:
                continue
            # Bounded: this runs under the lock the rebalance listener needs. After a
            # broker restart a producer's stop can wait on its transaction for ever,
            # and the whole group would wait on us.
            try:
                async with asyncio.timeout(self._commit_timeout_s):
                    await producer.stop()
            except KafkaError:
                pass
            except TimeoutError:
                log.warning(
                    "stopping the producer of %s (transactional id %s) outlasted %.0fs: "
                    "abandoning it",
                    tp,
                    self._transactional_id(tp),
                    self._commit_timeout_s,
                )
                await abandon(producer)
            await self._handler.revoked(self._logical(tp))

    async def _doubt(
        self,
        tp: TopicPartition,
        producer: AIOKafkaProducer,
        consumed_until: int | None,
        exc: BaseException,
    ) -> None:
        """Drop ``tp``'s producer and local view; `run` takes the partition again."""
        log.warning(
            "transaction on %s (transactional id %s) ended in doubt (%r): re-initialising "
            "its producer and reading what Kafka committed",
            tp,
            self._transactional_id(tp),
            exc,
        )
        self._producers.pop(tp, None)
        self._next.pop(tp, None)
        await abandon(producer)
        await self._handler.revoked(self._logical(tp))
        self._in_doubt[tp] = consumed_until
        # Not at once: if this process was paused (a zombie whose session expired), two
        # heartbeats let the group take the partition away first; re-initialising it
        # here would fence its rightful new owner.
        self._retry_after[tp] = time.monotonic() + 2 * self._heartbeat_ms / 1000
        if self._consumer is not None and tp in self._consumer.assignment():
            self._consumer.pause(tp)  # nothing is fetched for it until it is taken again

    def _resolved(self, tp: TopicPartition, committed: int) -> None:
        consumed_until = self._in_doubt.pop(tp)
        if consumed_until is None:
            outcome, what = "unknown", "had no input; its changes, if any, came from the changelog"
        elif committed >= consumed_until:
            outcome, what = "committed", f"committed (the group is at offset {committed})"
        else:
            outcome = "not_committed"
            what = f"did not commit: deciding again from offset {committed}"
        self.doubts[outcome] += 1
        log.warning(
            "in-doubt transaction on %s (transactional id %s) %s",
            tp,
            self._transactional_id(tp),
            what,
        )

    def _logical(self, tp: TopicPartition) -> TopicPartition:
        return TopicPartition(tp.topic[len(self._prefix_topics) :], tp.partition)

    async def _rewind(self, tp: TopicPartition) -> int:
        """Go back to the offset the group committed (the beginning when none was).

        The consumer may have fetched records of ``tp`` before we owned it; they were
        not processed, so the position must return to what Kafka says was consumed.
        """
        if self._consumer is None:
            return 0
        committed = await self._consumer.committed(tp)
        if committed is None or committed < 0:
            # Resolved now, not lazily: a lazy reset could land after records were
            # already processed and replay them.
            committed = (await self._consumer.beginning_offsets([tp]))[tp]
        self._consumer.seek(tp, committed)
        self._next[tp] = committed
        return int(committed)


def _retrieve(futures: Sequence[asyncio.Future[RecordMetadata]]) -> None:
    """Look at the errors of sends given up on (else asyncio logs them as never retrieved)."""
    for future in futures:
        if future.done() and not future.cancelled():
            future.exception()
