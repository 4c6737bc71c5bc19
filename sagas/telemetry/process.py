"""CPU and memory of the current process as observable instruments.

Read from the standard library and ``/proc`` (Linux), not psutil: four numbers do not
justify a compiled dependency. Names follow the OpenTelemetry process semantic
conventions; ``service.name`` on the resource says which component it is.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterable
from pathlib import Path

from opentelemetry.metrics import CallbackOptions, Meter, Observation

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_STATM = Path("/proc/self/statm")
_FDS = Path("/proc/self/fd")


def memory() -> tuple[int, int]:
    """Resident and virtual bytes (peak RSS when /proc is unavailable)."""
    try:
        virtual, resident = _STATM.read_text().split()[:2]
        return int(resident) * _PAGE, int(virtual) * _PAGE
    except OSError:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        return peak, peak


class ProcessMetrics:
    """Registers ``process.cpu.time``, ``process.cpu.utilization``,
    ``process.memory.usage``, ``process.memory.virtual`` and
    ``process.open_file_descriptor.count`` on ``meter``."""

    def __init__(self, meter: Meter) -> None:
        self._last = (time.monotonic(), sum(os.times()[:2]))
        self._cpus = os.cpu_count() or 1
        meter.create_observable_counter(
            "process.cpu.time", [self._cpu_time], unit="s", description="CPU seconds used."
        )
        meter.create_observable_gauge(
            "process.cpu.utilization",
            [self._utilization],
            unit="1",
            description="CPU time since the last observation over elapsed time and CPUs.",
        )
        meter.create_observable_up_down_counter(
            "process.memory.usage", [self._resident], unit="By", description="Resident memory."
        )
        meter.create_observable_up_down_counter(
            "process.memory.virtual", [self._virtual], unit="By", description="Virtual memory."
        )
        meter.create_observable_up_down_counter(
            "process.open_file_descriptor.count",
            [self._fds],
            unit="{file_descriptor}",
            description="Open file descriptors.",
        )

    def _cpu_time(self, options: CallbackOptions) -> Iterable[Observation]:
        times = os.times()
        yield Observation(times.user, {"cpu.mode": "user"})
        yield Observation(times.system, {"cpu.mode": "system"})

    def _utilization(self, options: CallbackOptions) -> Iterable[Observation]:
        now, cpu = time.monotonic(), sum(os.times()[:2])
        then, before = self._last
        self._last = (now, cpu)
        if now > then:
            yield Observation((cpu - before) / (now - then) / self._cpus)

    def _resident(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(memory()[0])

    def _virtual(self, options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(memory()[1])

    def _fds(self, options: CallbackOptions) -> Iterable[Observation]:
        try:
            yield Observation(len(os.listdir(_FDS)))
        except OSError:
            return
