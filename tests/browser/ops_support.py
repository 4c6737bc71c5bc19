"""Shared by the operations tests: a saga with long timeouts, participants that can stall,
and the environment the `sagas` CLI reads."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sagas import RetryPolicy, Saga, Step
from sagas.contracts.codec import Codec
from sagas.contracts.messages.sagas import CommandFailed
from sagas.contracts.record import Envelope, Record
from services.messages.payments import AuthorizePayment
from tests.integration.engine_support import Order, reply_for, two_step_saga

STALL = "stall"
"""Orders whose id ends with this get "gateway busy" for their payment: the step waits
ten minutes for its retry, so the saga stays RUNNING until an operator acts."""

LONG = timedelta(minutes=10)


def ops_saga(name: str) -> Saga[Order]:
    """The two-step saga; the payment retries a retryable failure after a long backoff."""
    saga = two_step_saga(name)
    retry = RetryPolicy(max_attempts=3, initial_backoff=LONG, max_backoff=LONG, jitter=0)
    steps = tuple(
        replace(s, timeout=LONG, retry=retry) if s.name == "authorize_payment" else s
        for s in saga.steps
        if isinstance(s, Step)
    )
    return replace(saga, steps=steps)


def stalled_reply(command: AuthorizePayment, command_id: str) -> CommandFailed:
    return CommandFailed(
        command_id=command_id,
        command_type=AuthorizePayment.SCHEMA,
        reason=f"gateway busy for {command.order_id}",
        retryable=True,
    )


class StallingParticipants:
    """Inventory and payments: answer like `engine_support.reply_for`, except that a
    payment for an order ending in ``stall`` gets a retryable `CommandFailed`."""

    def __init__(self, bootstrap: str, prefix: str, codec: Codec) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.codec = codec
        self.received: list[Envelope] = []

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            f"{self.prefix}inventory.commands",
            f"{self.prefix}payments.commands",
            bootstrap_servers=self.bootstrap,
            group_id=f"participants-{uuid.uuid4().hex[:6]}",
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=True)
        await consumer.start()
        await producer.start()
        try:
            async for record in consumer:
                command = self.codec.decode(record.headers, record.value)
                self.received.append(command)
                payload: Any = command.payload
                reply: Record = reply_for(payload)
                if isinstance(payload, AuthorizePayment) and payload.order_id.endswith(STALL):
                    reply = stalled_reply(payload, command.id)
                envelope = Envelope(
                    id=f"{command.id}:reply",
                    type=reply.SCHEMA,
                    source="/tests/participants",
                    time=datetime.now(UTC),
                    payload=reply,
                    saga_id=command.saga_id,
                )
                headers, value = self.codec.encode(envelope)
                assert command.reply_to is not None
                await producer.send_and_wait(
                    command.reply_to, value, key=(command.saga_id or "").encode(), headers=headers
                )
        finally:
            await consumer.stop()
            await producer.stop()


def cli_environment(
    monkeypatch: pytest.MonkeyPatch, bootstrap: str, prefix: str, ops_db: Any
) -> None:
    """Point the `sagas` CLI at the test's cluster, topic prefix and read-model file."""
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    monkeypatch.setenv("SAGAS_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("SAGAS_OPS_DB", str(ops_db))
    monkeypatch.setenv("SAGAS_OPS_CATCH_UP_TIMEOUT", "30")
    monkeypatch.setenv("SAGAS_OPS_ACTION_TIMEOUT", "30")
