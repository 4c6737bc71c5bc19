"""`sagas dlq list|show|replay`: the dead-letter topics."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from sagas.contracts import deadletters
from sagas.kafka_security import checked_options
from sagas.ops.commands.context import out, print_json
from sagas.ops.dlq import DeadLetters
from sagas.ops.errors import OpsError
from sagas.settings import EngineSettings, KafkaSettings

if TYPE_CHECKING:
    Sub = argparse._SubParsersAction[argparse.ArgumentParser]


def add_parsers(sub: Sub) -> None:
    dlq = sub.add_parser("dlq", help="dead letters: list, show, replay")
    dlq_sub = dlq.add_subparsers(dest="dlq_command", required=True)
    ls = dlq_sub.add_parser("list", help="the newest dead letters")
    ls.add_argument("--topic", help="one topic, e.g. sagas.order_fulfilment.dlq")
    ls.add_argument("--limit", type=int, default=50)
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=lambda a: asyncio.run(list_letters(a)))
    show = dlq_sub.add_parser("show", help="one dead letter: reason, headers, value")
    show.add_argument("letter_id", metavar="ID", help="topic:partition:offset (from dlq list)")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=lambda a: asyncio.run(show_letter(a)))
    replay = dlq_sub.add_parser(
        "replay", help="re-produce dead letters to their original topic (dlq_* headers removed)"
    )
    replay.add_argument("letter_ids", metavar="ID", nargs="+")
    replay.add_argument("--dry-run", action="store_true", help="say where each would go")
    replay.add_argument("--json", action="store_true")
    replay.set_defaults(handler=lambda a: asyncio.run(replay_letters(a)))


@asynccontextmanager
async def dead_letters() -> AsyncIterator[DeadLetters]:
    kafka = KafkaSettings()
    bootstrap = kafka.bootstrap_servers
    if not bootstrap:
        raise OpsError("KAFKA_BOOTSTRAP_SERVERS is not set")
    options = await checked_options(kafka, bootstrap)
    async with DeadLetters(bootstrap, EngineSettings().topic_prefix, options) as letters:
        yield letters


async def list_letters(args: argparse.Namespace) -> int:
    async with dead_letters() as dlq:
        letters = await dlq.read(args.topic, args.limit)
    if args.json:
        print_json([d.summary() for d in letters])
        return 0
    table = Table(title=f"{len(letters)} dead letters")
    for column in ("id", "when", "reason", "type", "saga", "message"):
        table.add_column(column, overflow="fold")
    for d in letters:
        s = d.summary()
        table.add_row(
            *(Text(str(s[k] or "")) for k in ("id", "timestamp", "reason", "type", "saga_id")),
            Text(str(s["message"] or "")[:200]),
        )
    out().print(table)
    return 0


async def show_letter(args: argparse.Namespace) -> int:
    async with dead_letters() as dlq:
        letter = await dlq.get(args.letter_id)
    doc = letter.detail()
    if args.json:
        print_json(doc)
        return 0
    console = out()
    for key in ("id", "timestamp", "reason", "error", "message", "original_topic", "type", "key"):
        console.print(Text(f"{key}: {doc[key]}"))
    console.print(Text("headers:"))
    for k, v in doc["headers"]:
        console.print(Text(f"  {k}: {v}"))
    console.print(Text(f"value ({doc['size']} bytes, hex): {doc['value_hex']}"))
    return 0


async def replay_letters(args: argparse.Namespace) -> int:
    async with dead_letters() as dlq:
        letters = [await dlq.get(i) for i in args.letter_ids]
        if args.dry_run:
            done = [(d.id, d.header(deadletters.TOPIC) or "?") for d in letters]
        else:
            done = await dlq.replay(letters)
    if args.json:
        print_json([{"id": i, "topic": t, "dry_run": args.dry_run} for i, t in done])
        return 0
    verb = "would replay" if args.dry_run else "replayed"
    for letter_id, topic in done:
        out().print(Text(f"{verb} {letter_id} -> {topic}"))
    return 0
