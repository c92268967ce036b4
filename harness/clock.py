"""Clocks: the only place the harness reads time.

Logic never calls `time.monotonic()` itself; it asks the clock its target provides. The model target
runs on a `SimulatedClock`, so waiting for a 30 s deadline or a 3 h affinity timeout costs nothing,
while targets with real data planes run on the `RealClock`.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds and a way to let time pass."""

    def now(self) -> float:
        """Seconds since an arbitrary, fixed origin; never decreases."""
        ...

    def sleep(self, seconds: float) -> None:
        """Let `seconds` pass (really, or by advancing simulated time)."""
        ...


class RealClock:
    """Wall-clock monotonic time."""

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class SimulatedClock:
    """Time that only moves when someone sleeps: deterministic and free."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s

    def now(self) -> float:
        return self._now_s

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now_s += seconds
