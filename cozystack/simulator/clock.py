"""Clocks driving the simulated platform.

Tests use `ManualClock` so that "the control plane is up after 1 s" happens exactly when the test
says so, never because the machine was slow. The management command uses `RealClock`.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

# 2026-01-01T00:00:00Z: a fixed, recognisable start so timestamps in test output are stable.
DEFAULT_EPOCH = 1767225600.0


class ManualClock:
    """Time only moves when a test calls `advance()` (or the platform steps it in `advance`)."""

    manual = True

    def __init__(self, start: float = DEFAULT_EPOCH) -> None:
        self._now = float(start)
        self._lock = threading.Lock()

    def time(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> float:
        """Move forward; the caller then runs `platform.tick()` (or uses `platform.advance`)."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        with self._lock:
            self._now += seconds
            return self._now

    def set(self, when: float) -> None:
        """Jump to an absolute time (never backwards); used to step through due times in order."""
        with self._lock:
            self._now = max(self._now, float(when))


class RealClock:
    """Wall-clock time; the platform then runs its controller from a background thread."""

    manual = False

    def time(self) -> float:
        return time.time()


Clock = ManualClock | RealClock


def rfc3339(ts: float) -> str:
    """Kubernetes timestamps have second precision and a literal Z."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
