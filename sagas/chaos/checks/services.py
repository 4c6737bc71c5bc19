"""Checks (work in progress)."""

from __future__ import annotations

from sagas.chaos.faults.base import Check

CHECKS: list[Check] = []
