"""The operations read model: every saga of every engine process, in its own SQLite file.

`Follower` reads every partition of ``sagas.<saga>.changelog`` (all sagas found on the
cluster) and ``sagas.events`` with ``read_committed`` and no consumer group, and writes
what it reads to an `OpsStore` together with the offsets it has read up to, in one
SQLite transaction. The CLI catches up before answering; the dashboard follows
continuously.
"""

from sagas.ops.readmodel.follower import CatchUp, Follower
from sagas.ops.readmodel.store import InstanceRow, OpsStore, Query

__all__ = ["CatchUp", "Follower", "InstanceRow", "OpsStore", "Query"]
