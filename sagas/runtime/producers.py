"""Closing a transactional producer whose transaction ended in doubt.

`AIOKafkaProducer.stop` flushes first: with the broker unreachable it waits for as long
as the network is down, and aiokafka retries an unanswered EndTxn forever. A producer
whose outcome is in doubt has nothing left worth delivering: a newer producer with the
same transactional id completes or aborts its transaction. So it is torn down at once:
its pending batches fail, its connections close, its sender task ends.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError


async def abandon(producer: AIOKafkaProducer, grace: timedelta = timedelta(seconds=5)) -> None:
    """Close ``producer`` without delivering what it holds; bounded by about ``grace``."""
    # aiokafka has no public way to drop a producer's pending work; these attributes are
    # stable across 0.10-0.14 (the pinned version is 0.14).
    sender = producer._sender
    accumulator = producer._message_accumulator
    task = sender.sender_task
    error = KafkaConnectionError("producer abandoned: its transaction is in doubt")
    if task is not None and not task.done():
        task.cancel()
    accumulator.fail_all(error)
    # In-flight requests fail once their connections close, so the cancelled sender,
    # which waits for them, ends promptly.
    with contextlib.suppress(KafkaError, OSError):
        await producer.client.close()
    if task is not None:
        await asyncio.wait({task}, timeout=grace.total_seconds())
    accumulator.fail_all(error)  # batches re-queued by requests that failed meanwhile
    # stop() awaits the sender task cancelled above, so it ends in CancelledError. Run it
    # as its own task and only look at it: that CancelledError is the producer's, and
    # must not leak into the caller, where it would end the consuming loop silently (a
    # TaskGroup ignores a child that ends cancelled). A cancellation of the caller still
    # propagates through asyncio.wait.
    stopping = asyncio.ensure_future(producer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=grace.total_seconds())
    if not done:
        stopping.cancel()
    elif not stopping.cancelled():
        with contextlib.suppress(KafkaError, OSError):
            stopping.result()
