"""The framework as a user gets it, end to end: this checkout's wheel in a new
virtualenv, `sagas init`, a third participant and step added the way a user adds them,
`sagas check`, then `sagas run` and `sagas serve NAME` as processes on the broker, 20
bookings placed, and every one seen to end through `sagas list` and `sagas show`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.project_support import REPO, Processes, ok, run
from tests.wheel_support import WheelVenv

pytestmark = pytest.mark.kafka

PACKAGE = "hotel"
BOOKINGS = 20
DECLINED_EVERY = 4  # bookings 4, 8, ... pay with an empty card: their sagas compensate

SEND_CONFIRMATION = {
    "type": "record",
    "name": "SendConfirmation",
    "namespace": "notifications",
    "doc": "Tell the guest that their booking is confirmed.",
    "fields": [
        {"name": "booking_id", "type": "string", "doc": "The booking (the business key)."},
        {"name": "payment_id", "type": "string", "doc": "The payment, quoted in the message."},
    ],
}
CONFIRMATION_SENT = {
    "type": "record",
    "name": "ConfirmationSent",
    "namespace": "notifications",
    "doc": "The guest was told.",
    "fields": [
        {"name": "booking_id", "type": "string", "doc": "The booking (the business key)."},
        {"name": "message_id", "type": "string", "doc": "The message sent."},
    ],
}

NOTIFICATIONS = f'''"""The notifications service: tells guests that their booking is confirmed."""

from __future__ import annotations

from sagas.participant import Context, Handler, Participant

from {PACKAGE}.messages.notifications import ConfirmationSent, SendConfirmation

SCHEMA = """
CREATE TABLE IF NOT EXISTS sent (
    message_id TEXT PRIMARY KEY,
    booking_id TEXT NOT NULL UNIQUE
);
"""


async def send(command: SendConfirmation, ctx: Context) -> ConfirmationSent:
    message_id = ctx.new_id("msg")
    await ctx.db.execute(
        "INSERT INTO sent VALUES (?, ?) ON CONFLICT (booking_id) DO NOTHING",
        (message_id, command.booking_id),
    )
    return ConfirmationSent(booking_id=command.booking_id, message_id=message_id)


def participant() -> Participant:
    return Participant(
        name="notifications",
        handlers=(Handler(SendConfirmation, send, (ConfirmationSent,)),),
        schema=SCHEMA,
        web_port=7103,
    )
'''

STEP = """        Step(
            name="send_confirmation",
            kind=StepKind.RETRIABLE,  # after the pivot: retried until it succeeds
            command=Command(SendConfirmation, "notifications", send_confirmation),
            success=(On(ConfirmationSent),),
        ),
"""

BUILDER = """def send_confirmation(d: Booking) -> SendConfirmation:
    return SendConfirmation(booking_id=d.booking_id, payment_id=d.payment_id or "")


"""


def edit(path: Path, anchor: str, change: Callable[[str], str]) -> None:
    """Change the one place ``anchor`` is in ``path``, as a user's editor would."""
    text = path.read_text()
    assert text.count(anchor) == 1, f"{anchor!r} in {path}"
    path.write_text(text.replace(anchor, change(anchor)))


def add_a_third_participant_and_step(project: Path) -> None:
    """A new schema pair, its classes, a participant module, the saga's third step, and
    both registered in the app."""
    package = project / PACKAGE
    for folder, schema in (("commands", SEND_CONFIRMATION), ("replies", CONFIRMATION_SENT)):
        name = f"{schema['namespace']}.{schema['name']}.avsc"
        (package / "schemas" / folder / name).write_text(json.dumps(schema, indent=2) + "\n")
    (package / "participants" / "notifications.py").write_text(NOTIFICATIONS)
    saga = package / "booking.py"
    edit(
        saga,
        f"from {PACKAGE}.messages.payments import",
        lambda a: (
            f"from {PACKAGE}.messages.notifications import ConfirmationSent, SendConfirmation\n{a}"
        ),
    )
    edit(saga, "BOOKING: Saga[Booking] = Saga(", lambda a: BUILDER + a)
    edit(
        saga,
        "    ),\n    deadline=",
        lambda a: STEP + a,  # the last item of the steps tuple
    )
    app = package / "app.py"
    edit(app, "import payments, rooms", lambda _: "import notifications, payments, rooms")
    edit(
        app,
        "        payments.participant(),\n",
        lambda a: a + "        notifications.participant(),\n",
    )


def sagas_list(project: Path, venv: WheelVenv, env: dict[str, str]) -> list[dict[str, Any]]:
    out = ok(
        run(
            ["sagas", "list", "--json", "--limit", "200"],
            project,
            env=env,
            bin_dir=venv.bin_dir,
        )
    )
    return list(json.loads(out)["items"])


@pytest.mark.timeout(300)
def test_a_new_project_on_the_installed_wheel_runs_its_sagas_to_their_end(
    wheel_venv: WheelVenv, kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git_status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    timings = dict(wheel_venv.timings)
    bin_dir = wheel_venv.bin_dir
    began = time.monotonic()

    # -- a new project, grown by one participant and one step ----------------------------
    project = tmp_path / PACKAGE
    ok(run(["sagas", "init", str(project)], tmp_path, bin_dir=bin_dir))
    add_a_third_participant_and_step(project)
    generated = ok(run(["sagas", "codegen"], project, bin_dir=bin_dir))
    assert "wrote hotel/messages/notifications.py" in generated
    checked = ok(run(["sagas", "check"], project, env={"COLUMNS": "200"}, bin_dir=bin_dir))
    assert "13 schemas, 13 message classes" in checked
    assert "OK: no problems" in checked
    timings["init, edit, codegen, check"] = time.monotonic() - began

    # -- the engine and three services as processes ---------------------------------------
    prefix = f"w{uuid.uuid4().hex[:8]}."
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SAGAS_TOPIC_PREFIX": prefix,
        "SAGAS_ENGINE_GROUP": f"{prefix}engine",
        "SAGAS_TRANSACTIONAL_PREFIX": f"{prefix}sagas",
        "SERVICE_WEB_PORT": "0",  # no health endpoints: no port to collide on
        "SAGAS_TELEMETRY_MODE": "off",
    }
    began = time.monotonic()
    with Processes(tmp_path / "logs") as processes:
        processes.start("engine", ["sagas", "run"], project, env=env, bin_dir=bin_dir)
        for name in ("rooms", "payments", "notifications"):
            processes.start(name, ["sagas", "serve", name], project, env=env, bin_dir=bin_dir)

        placing = ["python", "-m", f"{PACKAGE}.place", str(BOOKINGS)]
        placed = ok(
            run(
                [*placing, "--declined-every", str(DECLINED_EVERY)],
                project,
                env=env,
                bin_dir=bin_dir,
            )
        )
        timings["processes up, bookings placed"] = time.monotonic() - began
        lines = [line for line in placed.splitlines() if line.startswith("placed ")]
        expected = {
            line.split()[1]: "COMPENSATED" if "card-empty" in line else "COMPLETED"
            for line in lines
        }
        assert len(expected) == BOOKINGS
        assert list(expected.values()).count("COMPENSATED") == BOOKINGS // DECLINED_EVERY

        # -- every saga ends, as `sagas list` tells ---------------------------------------
        began = time.monotonic()
        deadline = began + 120
        ended: dict[str, str] = {}
        while True:
            processes.assert_running()
            rows = sagas_list(project, wheel_venv, env)
            ended = {r["saga_id"]: r["state"] for r in rows if r["saga_id"] in expected}
            if ended.keys() == expected.keys() and all(
                s in ("COMPLETED", "COMPENSATED", "FAILED") for s in ended.values()
            ):
                break
            assert time.monotonic() < deadline, f"not ended after 120 s: {ended}"
        timings["all sagas ended"] = time.monotonic() - began
        assert ended == expected

        # -- and `sagas show` tells each one's steps ---------------------------------------
        done = next(i for i, s in expected.items() if s == "COMPLETED")
        undone = next(i for i, s in expected.items() if s == "COMPENSATED")
        shown = {
            saga_id: json.loads(
                ok(run(["sagas", "show", saga_id, "--json"], project, env=env, bin_dir=bin_dir))
            )
            for saga_id in (done, undone)
        }
        assert shown[done]["state"] == "COMPLETED"
        assert [(s["name"], s["status"]) for s in shown[done]["steps"]] == [
            ("hold_room", "SUCCEEDED"),
            ("charge_card", "SUCCEEDED"),
            ("send_confirmation", "SUCCEEDED"),
        ]
        assert shown[undone]["state"] == "COMPENSATED"
        steps = {s["name"]: s for s in shown[undone]["steps"]}
        assert steps["hold_room"]["status"] == "COMPENSATED"
        assert steps["charge_card"]["status"] == "FAILED"
        assert "card declined: insufficient funds" in json.dumps(shown[undone])

        began = time.monotonic()
        codes = processes.stop(within=30)
        timings["processes stopped"] = time.monotonic() - began
    assert codes == {"engine": 0, "rooms": 0, "payments": 0, "notifications": 0}, {
        name: processes.log(name)[-2000:] for name, code in codes.items() if code
    }

    # -- what the services did, from their own stores ----------------------------------------
    stores = project / "var" / "services"
    with sqlite3.connect(stores / "notifications.sqlite3") as db:
        sent = {row[0] for row in db.execute("SELECT booking_id FROM sent")}
    assert {f"booking:{b}" for b in sent} == {i for i, s in expected.items() if s == "COMPLETED"}
    with sqlite3.connect(stores / "rooms.sqlite3") as db:
        holds = dict(db.execute("SELECT status, COUNT(*) FROM holds GROUP BY status").fetchall())
    declined = BOOKINGS // DECLINED_EVERY
    assert holds == {"HELD": BOOKINGS - declined, "RELEASED": declined}

    assert (
        subprocess.run(
            ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
        == git_status
    ), "the test changed files of the repository"
    with capsys.disabled():
        print("\ntest_wheel timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items()))
