"""Exact sliding-window rate limits per app + tenant, like the Defender API's throttling.

Every window (calls, per_seconds) counts the calls answered in the last `per_seconds`.
A call is admitted only if every window has room; admitted calls are recorded, rejected
ones are not (the service counts the calls it served, so a client hammering through 429s
does not push its own recovery further out).
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from typing import Callable, Hashable, Iterable

Limit = tuple[int, float]
DEFAULT_LIMITS: tuple[Limit, ...] = ((100, 60.0), (1500, 3600.0))


def normalize_limits(limits: Iterable) -> tuple[Limit, ...]:
    """Accept (calls, per_seconds) pairs or {"calls", "per_seconds"} dicts; validate them."""
    result = []
    for item in limits:
        calls, per = (item["calls"], item["per_seconds"]) if isinstance(item, dict) else item
        if int(calls) < 1 or float(per) <= 0:
            raise ValueError("each limit needs calls >= 1 and per_seconds > 0")
        result.append((int(calls), float(per)))
    return tuple(result)


class SlidingWindows:
    """Thread-safe sliding-window logs keyed by (client_id, tenant)."""

    def __init__(self, limits: Iterable = DEFAULT_LIMITS, clock: Callable[[], float] = time.monotonic):
        self._limits = normalize_limits(limits)
        self._clock = clock
        self._lock = threading.Lock()
        self._log: dict[Hashable, list[float]] = {}

    @property
    def limits(self) -> tuple[Limit, ...]:
        """The configured (calls, per_seconds) windows."""
        return self._limits

    def set_limits(self, limits: Iterable) -> None:
        """Replace the windows; the call history is kept."""
        with self._lock:
            self._limits = normalize_limits(limits)

    def reset(self) -> None:
        """Forget every recorded call."""
        with self._lock:
            self._log.clear()

    def admit(self, key: Hashable) -> float | None:
        """Record a call and return None, or return the seconds until the call would fit."""
        with self._lock:
            now = self._clock()
            times = self._log.setdefault(key, [])
            longest = max((per for _, per in self._limits), default=0.0)
            del times[: bisect.bisect_right(times, now - longest)]
            wait = 0.0
            for calls, per in self._limits:
                inside = times[bisect.bisect_right(times, now - per):]
                if len(inside) >= calls:
                    # The window frees up when the oldest call that makes it full leaves.
                    wait = max(wait, inside[len(inside) - calls] + per - now)
            if wait > 0:
                return wait
            times.append(now)
            return None


def retry_after_header(wait: float) -> str:
    """`Retry-After` as whole seconds, rounded up and at least 1, like the live service."""
    return str(max(1, math.ceil(wait)))
