"""A component's view of a schema registry outage: how often it waited, said once.

The engine, the participants and the read model treat a `RegistryError` the same way:
the records wait (nothing is dead-lettered) and are handed over again after a pause. A
`RegistryOutage` counts those waits and logs one warning when an outage begins and one
line when the registry answers again, instead of a line per retry.
"""

from __future__ import annotations

import logging

from sagas.contracts.errors import RegistryError


class RegistryOutage:
    """Waits on the schema registry of one component.

    Args:
        log: the component's logger.
        who: how the component names itself in the lines (e.g. "read model: ").
        waiting: what waits meanwhile (e.g. "commands wait").
    """

    def __init__(self, log: logging.Logger, who: str, waiting: str) -> None:
        self._log = log
        self._who = who
        self._waiting = waiting
        self.waits = 0
        """Times the component put records back because the registry could not be reached."""
        self.down = False

    def waited(self, error: RegistryError) -> None:
        """The registry could not be reached: one more wait (a warning if it is the first)."""
        self.waits += 1
        if not self.down:
            self._log.warning(
                "%sthe schema registry is unavailable (%s); %s", self._who, error, self._waiting
            )
        self.down = True

    def answered(self) -> None:
        """The registry answered: the outage, if any, is over."""
        if self.down:
            self._log.info("%sthe schema registry answers again", self._who)
        self.down = False
