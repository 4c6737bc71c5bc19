"""The participant services the project ships, as data (nothing starts).

`sagas check` reads their handlers' usages from here; adding a service is one line.
"""

from __future__ import annotations

from sagas.participant import Participant
from services import (
    access,
    assets,
    directory,
    hr,
    inventory,
    licensing,
    mail,
    orders,
    payments,
    shipping,
)


def all_participants() -> tuple[Participant, ...]:
    """Every shipped participant definition."""
    return (
        orders.participant(),
        inventory.participant(),
        payments.participant(),
        shipping.participant(),
        hr.participant(),
        directory.participant(),
        assets.participant(),
        mail.participant(),
        licensing.participant(),
        access.participant(),
    )
