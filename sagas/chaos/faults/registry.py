"""Every fault kind the runner can inject, merged from the family modules.

Each family module defines ``FAULTS: dict[str, Fault]``; add a family here with one
import and one ``**family.FAULTS`` line.
"""

from __future__ import annotations

from sagas.chaos.faults import messages, network, poison, process, store_clock
from sagas.chaos.faults.base import Fault

FAULTS: dict[str, Fault] = {
    **process.FAULTS,
    **messages.FAULTS,
    **poison.FAULTS,
    **store_clock.FAULTS,
    **network.FAULTS,
}
"""Fault kind -> the async function that injects and heals it."""
