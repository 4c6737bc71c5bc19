"""The order saga's participants as users run them: `sagas serve NAME`, one process each.

Which services: every participant a command of the saga goes to (steps and
compensations, read from the definition). Each runs on the project's participant
framework (`sagas.participant`, the aiokafka runner by default) with its own SQLite
store in the phase's work folder, seeded (``SERVICE_SEED_FILE``) so that no bench order
fails for lack of stock, money or carrier capacity: ``orders`` orders of the bench's
one kind (`sagas.bench.load.order_placed`) fit in the seed.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sagas import Saga, Step
from sagas.bench.load import order_placed
from services.definitions.order_fulfilment import ORDER_FULFILMENT

SEED_ORDERS = 10_000_000
"""Orders the default seed has room for (a bench phase sends a few ten thousand)."""


def services_of(saga: Saga[Any]) -> tuple[str, ...]:
    """The participants the saga's commands and compensations go to, sorted."""
    found: set[str] = set()
    for leaf in saga.leaves:
        if isinstance(leaf, Step):
            found.add(leaf.command.service)
        if leaf.compensation is not None:
            found.add(leaf.compensation.command.service)
    return tuple(sorted(found))


SERVICES = services_of(ORDER_FULFILMENT)
"""The order saga's participants: inventory, payments and shipping."""


def seeds(orders: int = SEED_ORDERS) -> dict[str, dict[str, Any]]:
    """Seed data per service (the services' own seed format) for ``orders`` bench orders.

    Inventory: every SKU of the bench order, ``orders`` times its quantity. Payments:
    the bench customer's account in the order's currency, ``orders`` times its total,
    a per-payment limit above the total. Shipping: one carrier serving the order's
    country with room for ``orders`` shipments.
    """
    order = order_placed("seed")
    stock: dict[str, int] = {}
    for line in order.items:
        stock[line.sku] = stock.get(line.sku, 0) + line.quantity * orders
    account = {
        "customer_id": order.customer_id,
        "currency": order.currency,
        "balance": str(order.total * orders),
        "limit": str(max(order.total * 10, Decimal("1000.00"))),
    }
    carrier = {
        "name": "Bench",
        "capacity": orders,
        "transit_days": 1,
        "countries": order.shipping_address.country,
    }
    return {
        "inventory": {"stock": stock},
        "payments": {"accounts": [account]},
        "shipping": {"carriers": [carrier]},
    }
