"""Each saga is one trace across the engine and every participant it touched.

Every process (one engine, the order services) runs as its own OS process with
``SAGAS_TELEMETRY=file``, so each writes its own JSON-lines file. The engine is killed
(SIGKILL) and restarted while sagas are in flight. The files are then reassembled:
each saga's trace must be one tree (one root, no orphan span) holding spans of the
engine and of every participant the saga touched.

Adding a saga is one `Scenario` in `SCENARIOS`: its `services.workload.Workload`
(services, seeds, the HTTP route that starts it, the requests) and which services a
request's saga touches.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from sagas.dev.outcomes import OutcomeWatcher
from sagas.dev.processes import Supervisor
from sagas.dev.system import LocalSystem, SystemLayout
from sagas.telemetry.traces import Trace, load_spans, saga_traces
from services.app import app as examples
from services.workload import HIRES, ORDERS, Request, Workload

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(480)]

ENGINE = "sagas-engine"


@dataclass(frozen=True)
class Scenario:
    """One saga as the test drives it.

    Attributes:
        workload: services, seeds, the HTTP route that starts a saga, the requests.
        touched: the services whose spans a saga started by that request must have.
        faults: the chaos entry point's faults per service (a slow one keeps sagas in
            flight for the kill).
    """

    workload: Workload
    touched: Callable[[Request], set[str]]
    faults: Mapping[str, Mapping[str, str]]


def _order_touched(request: Request) -> set[str]:
    if request.kind == "declined":  # payments declines: shipping never hears of it
        return {"orders", "inventory", "payments"}
    return {"orders", "inventory", "payments", "shipping"}


_PRODUCTS = {"ENGINEER", "SALES", "MANAGER"}  # roles with licences to assign
_CLOUD = {"ENGINEER", "SUPPORT", "MANAGER"}  # roles with cloud roles to grant


def _hire_touched(request: Request) -> set[str]:
    if request.kind == "no-laptop":  # the pool is empty: nothing after assets runs
        return {"hr", "directory", "assets"}
    role = request.body["role"]
    touched = {"hr", "directory", "assets", "mail"}
    touched |= {"licensing"} if role in _PRODUCTS else set()
    return touched | ({"access"} if role in _CLOUD else set())


SCENARIOS = (
    Scenario(ORDERS, _order_touched, {"shipping": {"latency": "0.25"}}),
    Scenario(HIRES, _hire_touched, {"mail": {"latency": "0.25"}}),
)
PER_SCENARIO = 12  # covers every kind of both mixes (they cycle every 10)


async def _run(
    bootstrap: str, workdir: Path, spans_dir: Path
) -> dict[str, tuple[Scenario, Request]]:
    layout = SystemLayout(
        bootstrap,
        workdir,
        prefix=f"tr{uuid.uuid4().hex[:8]}.",
        extra_env={
            "SAGAS_TELEMETRY": "file",
            "SAGAS_TELEMETRY_FILE": str(spans_dir / "{service}-{pid}.jsonl"),
        },
    )
    codec = examples.codec()
    expected: dict[str, tuple[Scenario, Request]] = {}
    with Supervisor(workdir / "logs") as supervisor:
        system = LocalSystem(layout, supervisor)
        for scenario in SCENARIOS:
            w = scenario.workload
            for name in w.services:
                spec = system.service_spec(
                    name, dict(w.seeds[name]), scenario.faults.get(name), web=name == w.entry
                )
                system.start(spec)
        system.start(system.engine_spec(1))
        watcher = OutcomeWatcher(bootstrap, codec, layout.prefix)
        async with asyncio.TaskGroup() as tg:
            watching = tg.create_task(watcher.run())
            async with httpx.AsyncClient(timeout=30) as client:
                for scenario in SCENARIOS:
                    w = scenario.workload
                    await system.wait_healthy(w.entry)
                    for i in range(PER_SCENARIO):
                        request = w.request(i)
                        url = f"{system.web_url(w.entry)}{w.route}"
                        response = await client.post(url, json=request.body)
                        assert response.status_code == 201, response.text
                        expected[request.saga_id] = (scenario, request)
            ids = set(expected)

            def ended() -> int:
                return sum(1 for i in ids if (o := watcher.sagas.get(i)) and o.state != "RUNNING")

            while ended() < 2:
                await watcher.changed(wait_s=1.0)
            assert ended() < len(ids) // 2, "too late to kill the engine mid-run"
            supervisor.kill("engine-1")
            supervisor.restart("engine-1")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 180
            while ended() < len(ids):
                assert loop.time() < deadline, f"{len(ids) - ended()} sagas did not end"
                await watcher.changed(wait_s=1.0)
            outcomes = {i: watcher.sagas[i].state for i in ids}
            watching.cancel()
        supervisor.stop_all()
        assert not supervisor.unexpected_exits()
    codec.close()
    assert outcomes == {i: request.expected for i, (_, request) in expected.items()}
    return expected


def _assert_one_tree(saga_id: str, trace: Trace, touched: set[str]) -> None:
    assert trace.orphans == [], (saga_id, [s["name"] for s in trace.orphans])
    roots = trace.roots
    assert len(roots) == 1, (saga_id, [r["name"] for r in roots])
    assert {ENGINE, *touched} <= trace.services, (saga_id, trace.services)
    (saga_span,) = trace.find("saga ")
    assert saga_span["service"] == ENGINE
    # The saga span covers every engine decision, from start to end, but one whose
    # transaction never committed: it is still reported (sagas/telemetry/engine.py), and
    # only the engine killed mid-batch, not the one that ended the saga, can have made it.
    decisions = [s for s in trace.spans if s["parent_id"] == saga_span["span_id"]]
    assert decisions
    early = [s for s in decisions if s["start_ns"] < saga_span["start_ns"]]
    assert all(s["instance"] != saga_span["instance"] for s in early), (saga_id, early)
    assert trace.find("start ")


async def test_each_saga_is_one_trace_across_every_process_and_an_engine_restart(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    spans_dir = tmp_path / "telemetry"
    expected = await _run(kafka_bootstrap, tmp_path, spans_dir)
    files = list(spans_dir.glob("*.jsonl"))
    services = {f.name.rsplit("-", 1)[0] for f in files}
    assert {ENGINE, *ORDERS.services, *HIRES.services} <= services
    assert len([f for f in files if f.name.startswith(ENGINE)]) == 2  # killed and restarted
    traces = saga_traces(load_spans(files))
    assert set(traces) >= set(expected)
    for saga_id, (scenario, request) in expected.items():
        _assert_one_tree(saga_id, traces[saga_id], scenario.touched(request))
    # Some saga started on the killed engine and ended on the restarted one, in one trace.
    spanning = [
        i
        for i in expected
        if len({s["instance"] for s in traces[i].spans if s["service"] == ENGINE}) == 2
    ]
    assert spanning, "no saga's trace crosses the engine restart"
    _assert_attributes(traces)


def _assert_attributes(traces: Mapping[str, Trace]) -> None:
    declined = traces["order:o0"]  # payments declines: compensated
    (saga_span,) = declined.find("saga ")
    assert saga_span["status"] == "ERROR"
    assert saga_span["attributes"]["saga.outcome"] == "COMPENSATED"
    (send,) = [s for s in declined.find("send inventory.ReserveStock") if s["service"] == ENGINE]
    attributes = send["attributes"]
    assert attributes["messaging.system"] == "kafka"
    assert attributes["messaging.operation.type"] == "send"
    assert attributes["messaging.destination.name"].endswith("inventory.commands")
    assert attributes["messaging.message.id"] == "order:o0:reserve_stock:1"
    assert attributes["saga.step"] == "reserve_stock"
    (handling,) = [s for s in declined.find("process payments.AuthorizePayment")]
    assert handling["service"] == "payments"
    assert handling["kind"] == "CONSUMER"
    assert handling["attributes"]["saga.outcome"] == "payments.PaymentDeclined"
    assert handling["attributes"]["messaging.kafka.offset"] >= 0
    failed = [s for s in declined.spans if s["service"] == ENGINE and s["status"] == "ERROR"]
    assert any(s["attributes"].get("saga.step") == "authorize_payment" for s in failed)
    compensation = [s for s in declined.find("send inventory.ReleaseStock")]
    assert compensation
    assert compensation[0]["attributes"]["saga.compensation"] is True
