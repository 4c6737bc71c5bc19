"""`serve`: run one participant in this process until SIGTERM or SIGINT.

``sagas serve NAME`` (the app's participant NAME) calls it; so may a project's own
``__main__`` block: ``serve(app.participant("billing"), app)``. The chaos entry point
(``python -m sagas.chaos.service NAME``) calls it with its faulty processor.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from pydantic import ValidationError

from sagas.app import App
from sagas.errors import SagasError
from sagas.participant.definition import Participant
from sagas.participant.processor import Processor, ProcessorFactory
from sagas.participant.service import ParticipantService
from sagas.participant.settings import ServiceSettings, renamed_in
from sagas.settings import KafkaSettings, TelemetrySettings, settings_problem
from sagas.telemetry import ParticipantTelemetry, configure_logging, setup


def serve(
    participant: Participant, app: App, *, processor_factory: ProcessorFactory = Processor
) -> None:
    """Run ``participant`` in this process with the settings from the environment.

    ``app`` gives the message contracts (the framework's and the project's schemas and
    classes): the participant decodes its commands and encodes its replies with them.
    ``processor_factory``: see `ParticipantService` (what a wrapper changes).
    """
    if renamed := renamed_in(os.environ):
        sys.exit("error: " + "; ".join(renamed))
    try:
        settings = ServiceSettings()
        kafka = KafkaSettings()
        telemetry_settings = TelemetrySettings()
    except ValidationError as exc:
        own = exc.title == ServiceSettings.__name__
        problem = settings_problem(exc, docs="docs/services.md" if own else "docs/configuration.md")
        sys.exit(f"error: {problem or exc}")
    configure_logging(participant.name, telemetry_settings)
    telemetry = setup(participant.name, telemetry_settings)
    telemetry.install_global()
    hooks = ParticipantTelemetry(telemetry, participant.name) if telemetry.enabled else None
    try:
        asyncio.run(
            _serve(
                participant,
                app,
                settings,
                kafka.bootstrap_servers,
                hooks,
                kafka,
                processor_factory=processor_factory,
            )
        )
    except SagasError as exc:  # e.g. the broker refused our login: one line, no traceback
        sys.exit(f"error: {participant.name}: {exc}")
    finally:
        telemetry.shutdown()


async def _serve(
    participant: Participant,
    app: App,
    settings: ServiceSettings,
    bootstrap: str | None,
    telemetry: ParticipantTelemetry | None = None,
    kafka: KafkaSettings | None = None,
    *,
    processor_factory: ProcessorFactory = Processor,
) -> None:
    with app.codec() as codec:
        service = ParticipantService(
            participant,
            settings,
            codec=codec,
            bootstrap=bootstrap,
            telemetry=telemetry,
            kafka=kafka,
            processor_factory=processor_factory,
        )
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.request_stop)
        await service.run()
