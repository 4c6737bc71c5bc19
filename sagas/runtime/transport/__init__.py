"""The engine's view of Kafka: protocols in the project's own record types.

The runtime talks to a `Transport` (`sagas.runtime.transport.base`): a group consumer,
transactional and idempotent producers and a partition reader, with ``read_committed``
semantics and fencing. Two implementations keep the same contract (tests/contract/ runs
one suite against both):

- `sagas.runtime.transport.kafka.KafkaTransport`: aiokafka against Apache Kafka (the
  topic prefix and the security options are applied here, and only here);
- `sagas.runtime.transport.memory.MemoryTransport`: an in-memory broker with topics,
  transactions, ``read_committed``, fencing and consumer groups, so the engine (and a
  user's end-to-end tests) run without a broker.
"""

from sagas.runtime.transport.base import (
    GroupConsumer,
    PartitionReader,
    Producer,
    Rebalance,
    TransactionalProducer,
    Transport,
)
from sagas.runtime.transport.records import TP, Consumed, Delivered, OutRecord

__all__ = [
    "TP",
    "Consumed",
    "Delivered",
    "GroupConsumer",
    "OutRecord",
    "PartitionReader",
    "Producer",
    "Rebalance",
    "TransactionalProducer",
    "Transport",
]
