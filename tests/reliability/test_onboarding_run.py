"""The onboarding saga end to end with real processes: one engine, six services.

A hundred hires: 70% are onboarded; managers find no BI seat (their parallel branches
are undone), and some engineers ask for a laptop model the pool does not have (their
account is disabled). The checks read the services' own stores and `sagas.events`.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from tests.reliability.onboarding_run import onboarding_system

HIRES = 100
pytestmark = [pytest.mark.kafka, pytest.mark.timeout(420)]


async def test_a_hundred_hires_end_as_expected_and_the_stores_agree(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    async with onboarding_system(kafka_bootstrap, tmp_path) as run:
        began = time.monotonic()
        await run.hire(HIRES)
        await run.wait_until_ended(deadline_s=240)
        elapsed = time.monotonic() - began
        violations = await run.audit()
        outcomes = run.outcomes()
    print(f"{HIRES} onboardings ended in {elapsed:.1f}s: {Counter(outcomes.values())}")
    assert Counter(run.expected.values()) == {"COMPLETED": 70, "COMPENSATED": 30}
    assert outcomes == run.expected
    assert violations == {}, {k: v[:5] for k, v in violations.items()}
