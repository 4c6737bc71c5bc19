"""The headers of a dead letter: the original record's, plus these.

Written by the engine (`sagas.runtime.deadletter`), the participants and the read model
(`sagas.contracts.errors.ContractError.dlq_headers`); read by `sagas dlq` and the
dashboard (`sagas.ops.dlq`), which replays a record without them.
"""

from __future__ import annotations

PREFIX = "dlq_"
"""Every header added to a dead letter starts so; the original's headers do not."""

REASON = "dlq_reason"
"""Why, in a word (``payload-corrupt``, ``missing-saga-id``...)."""
ERROR = "dlq_error"
"""The error's type name."""
MESSAGE = "dlq_message"
"""The error, for a person."""
TOPIC = "dlq_topic"
"""The physical topic the record was read from (where a replay sends it)."""
PARTITION = "dlq_partition"
OFFSET = "dlq_offset"
"""Where in ``TOPIC`` the record was read (``-1``: not known)."""
TRUNCATED = "dlq_truncated"
"""The original value's length, when the dead letter holds only its start."""
HEADERS_DROPPED = "dlq_headers_dropped"
"""How many of the original's headers were left out (too large together)."""


def headers(
    reason: str,
    error: str,
    message: str,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
) -> list[tuple[str, bytes]]:
    """The headers a dead letter gains, in this order; where it was read only when known."""
    added = [(REASON, reason.encode()), (ERROR, error.encode()), (MESSAGE, message.encode())]
    if topic is not None:
        added.append((TOPIC, topic.encode()))
    if partition is not None:
        added.append((PARTITION, str(partition).encode()))
    if offset is not None:
        added.append((OFFSET, str(offset).encode()))
    return added
