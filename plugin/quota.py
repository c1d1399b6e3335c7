"""The call budget: exact sliding windows for every API limit at once, priority lanes and 429 pauses.

Today's store is one process's memory (threads share it); issue 3 adds SQLite and Redis
stores behind the same interface.
"""

from __future__ import annotations

import bisect
import threading
import time
from typing import Callable, Protocol

from plugin.config import QuotaSettings


class Quota(Protocol):
    """What the session asks of a budget."""

    def try_acquire(self, lane: str) -> float:
        """Take one permit now and return 0, or take nothing and return the seconds to wait."""

    def pause(self, seconds: float) -> None:
        """Stop every caller of this budget for `seconds` (after a 429)."""

    def state(self, lane: str) -> dict:
        """Used/left per window for the lane, and any cooldown, for the envelope."""


class MemoryQuota:
    """Sliding-log windows in this process's memory; exact, thread-safe, clock injectable."""

    backend = "memory"

    def __init__(self, settings: QuotaSettings, clock: Callable[[], float] = time.monotonic):
        self._settings = settings
        self._clock = clock
        self._lock = threading.Lock()
        self._log: list[float] = []  # send times, ascending
        self._cooldown_until = 0.0
        self._longest = max(w.per_seconds for w in settings.limits)

    def try_acquire(self, lane: str) -> float:
        """Take one permit now and return 0, or take nothing and return the seconds to wait."""
        with self._lock:
            now = self._clock()
            wait = self._wait(lane, now)
            if wait <= 0:
                self._log.append(now)
            return wait

    def pause(self, seconds: float) -> None:
        """Stop every caller of this budget for `seconds` (after a 429)."""
        with self._lock:
            self._cooldown_until = max(self._cooldown_until, self._clock() + seconds)

    def state(self, lane: str) -> dict:
        """Used/left per window for the lane, and any cooldown, for the envelope."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            windows = []
            for window in self._settings.limits:
                cap = self._settings.cap(window, lane)
                used = self._count_since(now - window.per_seconds)
                windows.append({
                    "calls": window.calls,
                    "per_seconds": window.per_seconds,
                    "cap": cap,
                    "used": used,
                    "left": max(0, cap - used),
                    "next_free_in_seconds": round(self._window_wait(window.per_seconds, cap, now), 3),
                })
            return {
                "backend": self.backend,
                "lane": lane,
                "windows": windows,
                "cooldown_seconds": round(max(0.0, self._cooldown_until - now), 3),
            }

    def _wait(self, lane: str, now: float) -> float:
        """Seconds until the lane could take a permit in every window and outside any cooldown."""
        self._trim(now)
        waits = [self._cooldown_until - now]
        for window in self._settings.limits:
            waits.append(self._window_wait(window.per_seconds, self._settings.cap(window, lane), now))
        return max(0.0, *waits)

    def _window_wait(self, per_seconds: float, cap: int, now: float) -> float:
        """Seconds until fewer than `cap` sends lie in the last `per_seconds`."""
        start = bisect.bisect_right(self._log, now - per_seconds)
        in_window = len(self._log) - start
        if in_window < cap:
            return 0.0
        # The send that must leave the window before one more fits.
        return self._log[start + in_window - cap] + per_seconds - now

    def _count_since(self, since: float) -> int:
        return len(self._log) - bisect.bisect_right(self._log, since)

    def _trim(self, now: float) -> None:
        """Forget sends older than the longest window."""
        del self._log[: bisect.bisect_right(self._log, now - self._longest)]
