"""`python -m sagas.bench.service_load`, tiny: one service under each kind of load."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagas.bench.service_load import measure, parser

pytestmark = pytest.mark.kafka


@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "argv",
    [
        ["--mode", "closed", "--seconds", "2", "--inflight", "5"],
        ["--mode", "rate", "--seconds", "2", "--rate", "10"],
        ["--mode", "burst", "--count", "50"],
    ],
)
async def test_the_service_load_measures_and_stops_the_service(
    kafka_bootstrap: str, tmp_path: Path, argv: list[str]
) -> None:
    result = await measure(kafka_bootstrap, tmp_path, parser().parse_args(argv), None)

    assert result["commands"] > 0
    assert result["commands_per_s"] > 0
    assert result["service_cpu_ms_per_command"] > 0
    assert result["broker_cpu_ms_per_command"] is None  # no broker pid given
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"]
    assert result["sigterm"] == {
        "exit": 0,
        "seconds": result["sigterm"]["seconds"],
        "killed_after_term": 0,
    }
    assert result["sigterm"]["seconds"] < 5
