"""A minimal faust-streaming worker, run as a program by the broker compatibility check.

``python -m sagas.dev.faust_worker --bootstrap H:P --source A --sink B --app-id X --datadir D``
starts one worker whose agent reads raw bytes from ``A`` and writes them upper-cased,
under the same key, to ``B``. It stops on SIGTERM (faust's worker installs the handler).

It runs in a process of its own because a faust worker owns its event loop, its
signal handlers and its logging; the engine never imports faust.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Sequence
from typing import Any


def build_app(
    bootstrap: str, source: str, sink: str, app_id: str, datadir: str, exactly_once: bool
) -> Any:
    """The faust app: one agent from ``source`` to ``sink`` (bytes in, bytes out)."""
    import faust

    app = faust.App(
        app_id,
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=datadir,
        web_enabled=False,
        topic_partitions=1,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="exactly_once" if exactly_once else "at_least_once",
    )
    source_topic = app.topic(source, key_type=bytes, value_type=bytes, value_serializer="raw")
    sink_topic = app.topic(sink, key_type=bytes, value_type=bytes, value_serializer="raw")

    async def shout(stream: Any) -> AsyncIterator[bytes]:
        async for event in stream.events():
            value = bytes(event.value).upper()
            await sink_topic.send(key=event.key, value=value)
            yield value

    app.agent(source_topic, name=f"{app_id}.shout")(shout)
    return app


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--datadir", required=True)
    parser.add_argument("--exactly-once", action="store_true")
    args = parser.parse_args(argv)
    import faust

    app = build_app(
        args.bootstrap, args.source, args.sink, args.app_id, args.datadir, args.exactly_once
    )
    faust.Worker(app, loglevel="WARNING").execute_from_commandline()


if __name__ == "__main__":
    main()
