"""The id of an operator action.

The CLI and the dashboard send an action with this id (`sagas.ops.actions`); the engine
records the action in the instance history under it (`sagas.runtime.wire`); watching
the read model for that entry tells whether the action was applied.
"""

from __future__ import annotations

from datetime import datetime

from sagas.contracts.messages.sagas import OperatorActionKind


def action_id(saga_id: str, kind: OperatorActionKind, requested_at: datetime) -> str:
    """``<saga id>:<ACTION>:<requested_at ISO 8601>``."""
    return f"{saga_id}:{kind.value}:{requested_at.isoformat()}"
