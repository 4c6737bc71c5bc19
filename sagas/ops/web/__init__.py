"""The web dashboard: overview, instances, an instance, definitions, dead letters.

`create_app(config)` builds the FastAPI application; `Dashboard` serves it inside a
running event loop (tests, `sagas demo`); `serve` runs it as `sagas web` does.
"""

from sagas.ops.web.app import create_app
from sagas.ops.web.server import Dashboard, serve
from sagas.ops.web.state import WebConfig

__all__ = ["Dashboard", "WebConfig", "create_app", "serve"]
