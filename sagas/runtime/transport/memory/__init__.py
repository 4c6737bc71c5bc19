"""An in-memory broker with Kafka's semantics as the runtime relies on them.

`MemoryTransport` implements every protocol of `sagas.runtime.transport.base` on a
`MemoryBroker`; several transports sharing one broker model several processes. Pure
asyncio, no threads, deterministic. What it models:

- topics of fixed partition counts, offsets from 0; the default partitioner is Kafka's
  (murmur2 of the key, so a key lands on the partition it would on Kafka), round robin
  for records without a key;
- transactions: records are in the log at once but readable only after their
  transaction commits, never when it aborts; each commit or abort writes a marker that
  takes an offset and is never returned (Kafka's control records); the last stable
  offset is the first offset of the earliest open transaction;
- offsets sent with a transaction become the group's committed offsets when it commits;
- transactional ids with epochs: a producer's `start` aborts the open transaction of the
  id and fences the earlier producer (`FencedError` from then on);
- consumer groups with aiokafka's eager protocol and the engine's co-partitioned assignor; sessions
  ending by the running loop's clock (a member that has not polled for its session
  timeout is removed) or at once with `MemoryBroker.expire`;
- faults on request: `MemoryBroker.fail_next`, `MemoryBroker.fail_next_commit`
  (`InDoubt` with the commit applied or not), `MemoryBroker.time_out_transaction`.

What it does not: replication, retention, compaction (a compacted changelog keeps every
record), topic configs (kept, not applied), broker outages or latency, consumer
heartbeats separate from polls, and the short delay on Kafka between a commit and its
markers (here the records and offsets are visible when `commit` returns).
"""

from sagas.runtime.transport.memory.broker import Call, MemoryBroker
from sagas.runtime.transport.memory.consumer import MemoryGroupConsumer
from sagas.runtime.transport.memory.producer import (
    MemoryIdempotentProducer,
    MemoryTransactionalProducer,
)
from sagas.runtime.transport.memory.transport import MemoryPartitionReader, MemoryTransport

__all__ = [
    "Call",
    "MemoryBroker",
    "MemoryGroupConsumer",
    "MemoryIdempotentProducer",
    "MemoryPartitionReader",
    "MemoryTransactionalProducer",
    "MemoryTransport",
]
