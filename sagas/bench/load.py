"""The load generator (orders on ``orders.events``) and the completion observer.

Both run in the bench process. The generator encodes a real ``OrderPlaced`` per order
(the same payload the shipped services publish, so payload sizes are realistic) and
either keeps a backlog in front of the system (saturation) or sends at a constant
arrival rate (open loop). The observer reads an output topic with ``read_committed``
and stamps the arrival time of every completion it sees.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from sagas.contracts import topics
from sagas.contracts.codec import Codec
from sagas.contracts.record import Envelope
from services.messages.orders import Address, OrderLine, OrderPlaced

ORDERS = topics.events("orders")
FULFILLED_TYPE = b"orders.OrderFulfilled"
CUSTOMER = "c-bench"
"""The customer of every bench order (the framework participants' seed holds its account)."""


def order_placed(order_id: str) -> OrderPlaced:
    """One bench order: two lines, an address in Germany, 22.50 EUR (like the demo's)."""
    return OrderPlaced(
        order_id=order_id,
        customer_id=CUSTOMER,
        items=(
            OrderLine(sku="SKU-1", quantity=2, unit_price=Decimal("5.00")),
            OrderLine(sku="SKU-2", quantity=1, unit_price=Decimal("12.50")),
        ),
        total=Decimal("22.50"),
        currency="EUR",
        shipping_address=Address(
            recipient="Ada Lovelace",
            line1="1 Main Street",
            line2=None,
            city="Berlin",
            postal_code="10115",
            country="DE",
        ),
        placed_at=datetime.now(UTC),
    )


def order_record(codec: Codec, order_id: str) -> tuple[list[tuple[str, bytes]], bytes]:
    """Headers and value of one ``OrderPlaced`` (`order_placed`)."""
    event = order_placed(order_id)
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type=event.SCHEMA,
        source="/bench/load",
        time=datetime.now(UTC),
        payload=event,
    )
    return codec.encode(envelope)


@dataclass
class Observer:
    """Counts completions on ``topic`` (records whose ``ce_type`` is ``wanted``, or every
    record when ``wanted`` is None) and stamps when each key arrived."""

    bootstrap: str
    topic: str
    wanted: bytes | None = FULFILLED_TYPE
    count: int = 0
    arrivals: list[float] = field(default_factory=list)
    done_at: dict[bytes, float] = field(default_factory=dict)
    keep_keys: bool = True
    _ready: asyncio.Event = field(default_factory=asyncio.Event)

    def rate(self, since: float, until: float) -> float:
        """Completions per second that arrived between two monotonic instants."""
        n = sum(1 for t in self.arrivals if since <= t < until)
        return n / max(until - since, 1e-9)

    async def wait_count(self, n: int, deadline_s: float) -> bool:
        """Wait until ``n`` completions were seen; False when the deadline passed first."""
        end = time.monotonic() + deadline_s
        while self.count < n:
            if time.monotonic() > end:
                return False
            await asyncio.sleep(0.05)  # poll interval while the observer consumes
        return True

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            self.topic,
            bootstrap_servers=self.bootstrap,
            group_id=None,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
        )
        await consumer.start()
        self._ready.set()
        try:
            while True:
                data = await consumer.getmany(timeout_ms=100, max_records=2000)
                now = time.monotonic()
                for records in data.values():
                    for r in records:
                        if self.wanted is not None and _ce_type(r.headers) != self.wanted:
                            continue
                        self.count += 1
                        self.arrivals.append(now)
                        if self.keep_keys and r.key is not None:
                            self.done_at.setdefault(r.key, now)
        finally:
            await consumer.stop()


def _ce_type(headers: object) -> bytes | None:
    for k, v in headers or ():  # type: ignore[attr-defined]  # aiokafka headers: tuples
        if k == "ce_type":
            return bytes(v)
    return None


class Generator:
    """Sends orders to ``<prefix>orders.events`` (or any topic) as fast or as paced as asked.

    Attributes:
        sent_at: monotonic instant each order was due (open loop) or sent, by key.
    """

    def __init__(self, bootstrap: str, topic: str, codec: Codec, tag: str) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._codec = codec
        self._tag = tag
        self.sent = 0
        self.sent_at: dict[bytes, float] = {}
        self._producer: AIOKafkaProducer | None = None

    async def __aenter__(self) -> Generator:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            enable_idempotence=True,
            linger_ms=5,
            max_batch_size=256 * 1024,
        )
        await self._producer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def send(self, n: int, due: float | None = None) -> None:
        """Send ``n`` new orders (not waiting for acknowledgements)."""
        assert self._producer is not None, "use `async with Generator(...)`"
        for _ in range(n):
            order_id = f"{self._tag}-{self.sent}"
            headers, value = order_record(self._codec, order_id)
            key = order_id.encode()
            self.sent_at[key] = due if due is not None else time.monotonic()
            await self._producer.send(self._topic, value, key=key, headers=headers)
            self.sent += 1

    async def flush(self) -> None:
        assert self._producer is not None
        await self._producer.flush()

    async def keep_backlog(
        self, completed: Callable[[], int], backlog: Callable[[], int], stop: asyncio.Event
    ) -> None:
        """Saturation: keep at least ``backlog()`` orders sent but not completed."""
        while not stop.is_set():
            missing = backlog() - (self.sent - completed())
            if missing > 0:
                await self.send(missing)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.05)  # refill interval

    async def open_loop(self, rate: float, duration_s: float) -> None:
        """Constant arrival rate for ``duration_s``: order i is due at start + i / rate and
        is sent when due, whatever the system does (no coordinated omission: latency is
        measured from the due time)."""
        start = time.monotonic()
        total = int(rate * duration_s)
        i = 0
        while i < total:
            now = time.monotonic()
            due_count = min(int((now - start) * rate) + 1, total)
            while i < due_count:
                await self.send(1, due=start + i / rate)
                i += 1
            await asyncio.sleep(max(start + i / rate - time.monotonic(), 0.001))
