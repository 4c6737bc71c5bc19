"""``python -m sagas.chaos.service NAME``: `sagas serve NAME` with a participant's faults.

The same service as ``sagas serve NAME`` (same settings, same signals, same exit on a
bad setting), except that its processor is a `FaultyProcessor` injecting the faults of
``SAGAS_CHAOS_SERVICE_*`` (`ServiceFaults`, docs/configuration.md): latency, retryable
failures, a crash after n applied commands. `sagas.dev.system.LocalSystem.service_spec`
starts a service this way when faults are asked for (the reliability tests);
``sagas serve`` has none of it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence

from sagas.app import load_app
from sagas.chaos.participant import ServiceFaults, faulty
from sagas.dev.cluster import load_settings
from sagas.errors import ConfigurationError, SagasError
from sagas.participant.main import serve


def unknown_faults(environ: Mapping[str, str]) -> list[str]:
    """The ``SAGAS_CHAOS_SERVICE_*`` variables of ``environ`` that name no fault: a typo
    would otherwise inject nothing, silently."""
    prefix = str(ServiceFaults.model_config.get("env_prefix", ""))
    known = {f"{prefix}{name}".upper() for name in ServiceFaults.model_fields}
    return sorted(v for v in environ if v.upper().startswith(prefix) and v.upper() not in known)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sagas.chaos.service",
        description="serve one of the app's participants, with the faults of "
        "SAGAS_CHAOS_SERVICE_*, until SIGTERM or SIGINT",
    )
    parser.add_argument("name", metavar="NAME", help="the participant's name")
    parser.add_argument("--app", default=None, help="the app (as for `sagas --app`)")
    args = parser.parse_args(argv)
    try:
        if unknown := unknown_faults(os.environ):
            raise ConfigurationError(
                f"{', '.join(unknown)}: no such fault (see docs/configuration.md)"
            )
        faults = load_settings(ServiceFaults)
        app = load_app(args.app)
        participant = app.participant(args.name)
    except SagasError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    serve(participant, app, processor_factory=faulty(faults))
    return 0


if __name__ == "__main__":
    sys.exit(main())
