"""``python -m services.<name>``: run one participant until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from pydantic import ValidationError

from sagas.settings import KafkaSettings
from services.participant.definition import Participant
from services.participant.service import ParticipantService
from services.settings import ServiceSettings


def serve(participant: Participant) -> None:
    """Run ``participant`` in this process with the settings from the environment."""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {participant.name} %(levelname)s %(message)s"
    )
    try:
        settings = ServiceSettings()
        kafka = KafkaSettings()
    except ValidationError as exc:
        sys.exit(f"error: invalid service setting: {exc} (see docs/services.md)")
    asyncio.run(_serve(participant, settings, kafka.bootstrap_servers))


async def _serve(
    participant: Participant, settings: ServiceSettings, bootstrap: str | None
) -> None:
    service = ParticipantService(participant, settings, bootstrap=bootstrap)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, service.request_stop)
    await service.run()
