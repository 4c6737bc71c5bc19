"""Benchmark participants: one process answering every command at once with success.

Not the faust services: these exist to put the engine, not the participants, under
load. They read ``inventory``, ``payments`` and ``shipping`` commands with
``read_committed`` (as every consumer of the engine's output must), decode each, and
produce the success reply to its ``reply_to`` topic, keyed by saga id, from one
idempotent producer; no store, no dedupe. Run as
``python -m sagas.bench.participants`` with ``KAFKA_BOOTSTRAP_SERVERS`` and
``SAGAS_TOPIC_PREFIX`` set; it creates the command topics when missing (with
``SAGAS_PARTITIONS`` partitions, as the engine does), so it can start with the engine.
"""

from __future__ import annotations

import asyncio
import os
import signal
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sagas.bench.topics import create_topics
from sagas.contracts import topics
from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope, Record
from services.app import app as examples
from services.messages.inventory import (
    ReleaseStock,
    ReserveStock,
    StockReleased,
    StockReserved,
)
from services.messages.payments import (
    AuthorizePayment,
    CapturePayment,
    PaymentAuthorized,
    PaymentCaptured,
    PaymentVoided,
    VoidPayment,
)
from services.messages.shipping import (
    CancelShipment,
    ScheduleShipment,
    ShipmentCancelled,
    ShipmentScheduled,
)

SERVICES = ("inventory", "payments", "shipping")


def success(command: Record) -> Record:
    """The success reply to a command of the order saga."""
    o: str = command.order_id  # type: ignore[attr-defined]  # every order command has one
    match command:
        case ReserveStock():
            return StockReserved(order_id=o, reservation_id=f"r-{o}")
        case AuthorizePayment(amount=amount, currency=currency):
            return PaymentAuthorized(
                order_id=o, authorization_id=f"a-{o}", amount=amount, currency=currency
            )
        case ScheduleShipment():
            return ShipmentScheduled(order_id=o, shipment_id=f"s-{o}", carrier="bench")
        case CapturePayment(authorization_id=auth):
            return PaymentCaptured(order_id=o, authorization_id=auth, capture_id=f"c-{o}")
        case ReleaseStock(reservation_id=r):
            return StockReleased(order_id=o, reservation_id=r)
        case VoidPayment(authorization_id=auth):
            return PaymentVoided(order_id=o, authorization_id=auth)
        case CancelShipment(shipment_id=s):
            return ShipmentCancelled(order_id=o, shipment_id=s)
    raise TypeError(f"no bench reply for {type(command).__name__}")


def reply(codec: Codec, command: Envelope) -> tuple[str, bytes, list[tuple[str, bytes]], bytes]:
    """Topic, key, headers and value of the reply to ``command``."""
    payload = success(command.payload)
    envelope = Envelope(
        id=f"{command.id}:reply",
        type=payload.SCHEMA,
        source="/bench/participants",
        time=datetime.now(UTC),
        payload=payload,
        saga_id=command.saga_id,
        in_reply_to=command.id,  # as the participant framework does
        traceparent=command.traceparent,
        tracestate=command.tracestate,
    )
    headers, value = codec.encode(envelope)
    return command.reply_to or "", (command.saga_id or "").encode(), headers, value


async def serve(bootstrap: str, prefix: str, stop: asyncio.Event, partitions: int = 6) -> None:
    """Answer commands until ``stop`` is set."""
    names = [topics.physical(prefix, topics.commands(s)) for s in SERVICES]
    await create_topics(bootstrap, dict.fromkeys(names, partitions))
    codec = examples.codec()
    consumer = AIOKafkaConsumer(
        *names,
        bootstrap_servers=bootstrap,
        group_id=f"{prefix}bench-participants",
        isolation_level="read_committed",
        auto_offset_reset="earliest",
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True, linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            data = await consumer.getmany(timeout_ms=100, max_records=500)
            futures = []
            for records in data.values():
                for r in records:
                    command = codec.decode(r.headers or [], r.value)
                    topic, _, headers, value = reply(codec, command)
                    # Keyed like the command, as the participant framework does: the reply
                    # comes back to the saga's partition.
                    futures.append(await producer.send(topic, value, key=r.key, headers=headers))
            for f in futures:
                await f
    finally:
        await consumer.stop()
        await producer.stop()
        codec.close()


def main() -> None:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    prefix = os.environ.get("SAGAS_TOPIC_PREFIX", "")
    partitions = int(os.environ.get("SAGAS_PARTITIONS", "6"))

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve(bootstrap, prefix, stop, partitions)

    asyncio.run(run())


if __name__ == "__main__":
    main()
