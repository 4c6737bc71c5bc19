"""CPU time per component, from /proc."""

from __future__ import annotations

import os
import socket

import pytest

from sagas.bench.cpu import CpuMeter, cpu_seconds, listener_pid, usage


def test_usage_per_component_and_totals() -> None:
    before = {"engine": 1.0, "participants": 2.0, "broker": 3.0, "bench": 0.5}
    after = {"engine": 3.0, "participants": 3.0, "broker": 4.0, "bench": 1.0}
    used = usage(before, after, 0.5)  # e.g. per 1,000 sagas with 500 completed
    assert used == pytest.approx(
        {"engine": 4.0, "participants": 2.0, "broker": 2.0, "bench": 1.0, "total": 9.0,
         "total_without_broker": 7.0}
    )  # fmt: skip


def test_a_component_not_measured_leaves_its_totals_unknown() -> None:
    before = {"engine": 1.0, "broker": None}
    after = {"engine": 2.0, "broker": None}
    used = usage(before, after, 1.0)
    assert used == {"engine": 1.0, "broker": None, "total": None, "total_without_broker": 1.0}


def test_this_process_uses_cpu_and_a_gone_one_none() -> None:
    sum(i * i for i in range(200_000))
    assert cpu_seconds(os.getpid()) > 0
    assert CpuMeter({"bench": [os.getpid()], "broker": None}).read()["broker"] is None
    assert cpu_seconds(2**22 + 12345) == 0.0  # above pid_max: never a process


def test_the_listener_of_a_port_is_found_by_its_command_line() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert listener_pid(port, wanted=b"python") == os.getpid()
        assert listener_pid(port, wanted=b"kafka.Kafka") is None  # not a broker
