"""How a unit's batch reaches Kafka: in one transaction, or without one (`Delivery`).

Each pair is called by `sagas.runtime.units.Unit` in two parts: the first as soon as
the batch is decided, the second once the batch before it has ended (its commit order).
``sent`` collects the futures of the records sent, in the order of the batch's records.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence

from sagas.runtime.transport.base import GroupConsumer, Producer, TransactionalProducer
from sagas.runtime.transport.records import TP, Delivered, OutRecord


async def begin_transaction(
    producer: TransactionalProducer,
    records: Sequence[OutRecord],
    offsets: Mapping[TP, int],
    group_id: str,
    sent: list[asyncio.Future[Delivered]],
) -> None:
    """Begin a transaction and send the batch's records and consumed offsets in it."""
    await producer.begin()
    for record in records:
        sent.append(await producer.send(record))
    if offsets:
        await producer.send_offsets(offsets, group_id)


async def commit_transaction(
    producer: TransactionalProducer, sent: list[asyncio.Future[Delivered]]
) -> list[Delivered]:
    """Commit it: every record and the offsets become visible together."""
    await producer.commit()
    return list(await asyncio.gather(*sent))


async def send_outputs(
    producer: Producer, outputs: Sequence[OutRecord], sent: list[asyncio.Future[Delivered]]
) -> None:
    """Without a transaction: send the batch's outputs (its state waits for them)."""
    for record in outputs:
        sent.append(await producer.send(record))


async def send_state_then_offsets(
    producer: Producer,
    consumer: GroupConsumer,
    state: Sequence[OutRecord],
    offsets: Mapping[TP, int],
    sent: list[asyncio.Future[Delivered]],
) -> list[Delivered]:
    """Once every output is acknowledged, send the state and, once it is acknowledged,
    commit the offsets: whatever a crash interrupts, an input is either decided again
    (the same outputs, dropped as duplicates) or found in its saga's state."""
    delivered = list(await asyncio.gather(*sent))
    for record in state:
        sent.append(await producer.send(record))
    delivered += await asyncio.gather(*sent[len(delivered) :])
    if offsets:
        await consumer.commit(offsets)
    return delivered
