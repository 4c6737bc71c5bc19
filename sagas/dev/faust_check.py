"""Run a faust-streaming agent against a broker and collect what it produced.

The worker (`sagas.dev.faust_worker`) runs in a child process in a session of its own;
it is always stopped (SIGTERM, then SIGKILL after a grace period) and reaped before
`faust_round_trip` returns or raises, so no process outlives the check.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from datetime import timedelta
from pathlib import Path

from sagas.dev.compat_checks import Check, CheckContext, CheckFailed, create_topics, expect


async def _stop(proc: asyncio.subprocess.Process, grace: timedelta) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), grace.total_seconds())
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
    await proc.wait()


def _tail(log: Path, lines: int = 8) -> str:
    try:
        text = log.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


async def faust_round_trip(
    bootstrap: str,
    source: str,
    sink: str,
    records: list[tuple[bytes, bytes]],
    workdir: Path,
    *,
    exactly_once: bool = False,
    grace: timedelta = timedelta(seconds=20),
) -> list[tuple[bytes, bytes]]:
    """Produce ``records`` to ``source``, run the faust worker, return what reached ``sink``.

    Returns once ``len(records)`` (key, value) pairs were read (``read_committed``) from
    ``sink``; the caller bounds the wait with a deadline. Raises `CheckFailed` (with
    the end of the worker's output) when the worker exits on its own.
    """
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    async with AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True) as p:
        for key, value in records:
            await p.send_and_wait(source, value, key=key)
    app_id = f"compat-faust-{uuid.uuid4().hex[:10]}"
    log = workdir / f"{app_id}.log"
    args = ["--bootstrap", bootstrap, "--source", source, "--sink", sink, "--app-id", app_id]
    args += ["--datadir", str(workdir / app_id)]
    if exactly_once:
        args.append("--exactly-once")
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "sagas.dev.faust_worker",
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    got: list[tuple[bytes, bytes]] = []
    try:
        async with AIOKafkaConsumer(
            sink,
            bootstrap_servers=bootstrap,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        ) as consumer:
            while len(got) < len(records):
                if proc.returncode is not None:
                    raise CheckFailed(
                        f"the faust worker exited with status {proc.returncode}: {_tail(log)}"
                    )
                batch = await consumer.getmany(timeout_ms=500)
                got.extend((r.key, r.value) for rs in batch.values() for r in rs)
    finally:
        await _stop(proc, grace)
    return got


async def _check_faust(ctx: CheckContext, exactly_once: bool) -> str:
    source = f"compat.faust-in.{uuid.uuid4().hex[:10]}"
    sink = f"compat.faust-out.{uuid.uuid4().hex[:10]}"
    await create_topics(ctx.bootstrap, source, sink)
    records = [(f"k{i}".encode(), f"hello {i}".encode()) for i in range(5)]
    ctx.step("waiting for the faust agent's output (worker log in the work dir)")
    got = await faust_round_trip(
        ctx.bootstrap, source, sink, records, ctx.workdir, exactly_once=exactly_once
    )
    want = [(k, v.upper()) for k, v in records]
    expect(got == want, f"sink holds {got!r}, expected {want!r}")
    return f"{len(records)} records through an agent"


async def check_faust_at_least_once(ctx: CheckContext) -> str:
    return await _check_faust(ctx, exactly_once=False)


async def check_faust_exactly_once(ctx: CheckContext) -> str:
    return await _check_faust(ctx, exactly_once=True)


FAUST_CHECKS: tuple[Check, ...] = (
    Check("faust agent (at_least_once)", check_faust_at_least_once),
    Check("faust agent (exactly_once)", check_faust_exactly_once),
)
