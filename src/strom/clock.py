"""Time, injected: every part of strom that needs "now" asks a Clock.

Retention, segment ageing and (later) compaction horizons all read the clock
through this seam, so tests can jump time forward instead of sleeping.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "ManualClock"]


class Clock(Protocol):
    """Anything with ``time_ms()`` returning milliseconds since the Unix epoch."""

    def time_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        ...


class SystemClock:
    """The wall clock (``time.time_ns() // 1_000_000``)."""

    __slots__ = ()

    def time_ms(self) -> int:
        """Milliseconds since the Unix epoch."""
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    __slots__ = ("_now_ms", "_lock")

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self._now_ms = int(now_ms)
        self._lock = threading.Lock()

    def time_ms(self) -> int:
        """The current manual time in milliseconds."""
        return self._now_ms

    def advance(self, ms: int) -> int:
        """Move time forward by ``ms`` (>= 0) and return the new time."""
        if ms < 0:
            raise ValueError("a ManualClock only moves forward")
        with self._lock:
            self._now_ms += int(ms)
            return self._now_ms

    def set(self, now_ms: int) -> None:
        """Set the time; it may not move backwards."""
        with self._lock:
            if now_ms < self._now_ms:
                raise ValueError("a ManualClock only moves forward")
            self._now_ms = int(now_ms)
