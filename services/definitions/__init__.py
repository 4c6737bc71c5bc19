"""The saga definitions the project ships.

Nothing is registered on import: a runtime, `sagas check` or a test asks for
`all_definitions()` and gets fresh references to the immutable definitions.
"""

from __future__ import annotations

from typing import Any

from sagas import Saga
from services.definitions.onboarding import ONBOARDING
from services.definitions.order_fulfilment import ORDER_FULFILMENT


def all_definitions() -> tuple[Saga[Any], ...]:
    """Every shipped saga definition; adding one is one line here."""
    return (ORDER_FULFILMENT, ONBOARDING)


__all__ = ["all_definitions"]
