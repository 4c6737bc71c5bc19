"""The example app: order fulfilment and employee onboarding, and their ten services.

Built on the public API only, as a team's own project would be. It is this
repository's app (``[tool.sagas] app`` in its pyproject.toml), so every ``sagas``
command run from a checkout uses it; ``sagas demo``, ``sagas chaos`` and ``sagas bench``
drive it.
"""

from __future__ import annotations

from pathlib import Path

from sagas import App
from services import (
    access,
    assets,
    directory,
    hr,
    inventory,
    licensing,
    mail,
    messages,
    orders,
    payments,
    shipping,
)
from services.definitions import all_definitions

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
"""The example domains' Avro schemas: the repository's top-level ``schemas/``."""

SPEC = "services.app:app"
"""How to name this app to a command or a process (``--app`` / ``SAGAS_APP``)."""

app = App(
    name="examples",
    sagas=all_definitions(),
    messages=messages,
    schemas=SCHEMAS,
    participants=(
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
    ),
)
