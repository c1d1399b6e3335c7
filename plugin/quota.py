"""The call budget: exact sliding windows for every API limit at once, priority lanes and 429 pauses.

Three stores behind one interface, chosen by `connection.quota.backend` (see `make_quota`):
`memory` (threads of one process), `sqlite` (every process on one host, quota_sqlite.py) and
`redis` (every host, quota_redis.py). All keep one log of send times per budget key; a lane
only decides where it stops (its cap), never what it counts.
"""

from __future__ import annotations

import bisect
import threading
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

from plugin.config import Connection, QuotaSettings
from plugin.errors import ConfigError
from plugin.shared import shared


class Quota(Protocol):
    """What the session asks of a budget.

    A permit is stamped when it is taken and stamped again, later, when its request has been
    answered (`settle`). Why: the service counts a call when it *arrives*, a few milliseconds
    (a TLS handshake, a busy host) after its permit. Counting each call until its answer came
    back keeps every window the service sees within the cap, whatever that delay was.
    """

    def try_acquire(self, lane: str, permit: str | None = None) -> float:
        """Take one permit (named `permit`, for settle) now and return 0, or take nothing and return the seconds to wait."""

    def settle(self, permit: str) -> None:
        """Restamp a taken permit with the current time, once its request is answered or abandoned."""

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
        self._stamps: dict[str, float] = {}  # permit name -> its time in the log, until settled
        self._cooldown_until = 0.0
        self._longest = max(w.per_seconds for w in settings.limits)

    def try_acquire(self, lane: str, permit: str | None = None) -> float:
        """Take one permit now and return 0, or take nothing and return the seconds to wait."""
        with self._lock:
            now = self._clock()
            wait = self._wait(lane, now)
            if wait <= 0:
                bisect.insort(self._log, now)
                if permit is not None:
                    self._stamps[permit] = now
            return wait

    def settle(self, permit: str) -> None:
        """Restamp a taken permit with the current time, once its request is answered or abandoned."""
        with self._lock:
            stamp = self._stamps.pop(permit, None)
            index = bisect.bisect_left(self._log, stamp) if stamp is not None else len(self._log)
            if index < len(self._log) and self._log[index] == stamp:
                del self._log[index]
                bisect.insort(self._log, max(stamp, self._clock()))

    def pause(self, seconds: float) -> None:
        """Stop every caller of this budget for `seconds` (after a 429)."""
        with self._lock:
            self._cooldown_until = max(self._cooldown_until, self._clock() + seconds)

    def state(self, lane: str) -> dict:
        """Used/left per window for the lane, and any cooldown, for the envelope."""
        with self._lock:
            now = self._clock()
            self._trim(now)
            measured = [(self._count_since(now - w.per_seconds),
                         self._window_wait(w.per_seconds, self._settings.cap(w, lane), now))
                        for w in self._settings.limits]
            return describe(self.backend, self._settings, lane, self._cooldown_until - now, measured)

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


def describe(backend: str, settings: QuotaSettings, lane: str, cooldown: float,
             measured: Sequence[tuple[int, float]]) -> dict:
    """The `state()` dict every backend returns: per window (same order as settings.limits) the
    sends of the whole budget in it, the lane's cap and what is left, and any 429 cooldown."""
    windows = []
    for window, (used, wait) in zip(settings.limits, measured):
        cap = settings.cap(window, lane)
        windows.append({
            "calls": window.calls,
            "per_seconds": window.per_seconds,
            "cap": cap,
            "used": used,
            "left": max(0, cap - used),
            "next_free_in_seconds": round(max(0.0, wait), 3),
        })
    return {"backend": backend, "lane": lane, "windows": windows, "cooldown_seconds": round(max(0.0, cooldown), 3)}


def make_quota(conn: Connection, *, clock: Callable[[], float] | None = None) -> Quota:
    """The budget store of `conn.quota.backend`, keyed by `conn.budget_key`.

    `clock` (tests) replaces the store's clock: monotonic seconds for memory, wall-clock
    seconds for sqlite (its log is shared by processes, and monotonic time is per process).
    Redis always runs on the Redis server's clock, so it refuses one.
    """
    settings = conn.quota
    if settings.backend == "memory":
        return MemoryQuota(settings, clock or time.monotonic)
    if settings.backend == "sqlite":
        from plugin.quota_sqlite import SQLiteQuota

        return SQLiteQuota(settings, Path(conn.state_dir) / "quota.sqlite3", conn.budget_key, clock=clock or time.time)
    if settings.backend == "redis":
        if clock is not None:
            raise ValueError("the redis quota runs on the Redis server's clock; it takes no clock")
        if not settings.redis_url:
            raise ConfigError("connection.quota.redis_url: required for the redis backend")
        from plugin.quota_redis import RedisQuota

        return RedisQuota(settings, settings.redis_url, conn.budget_key)
    raise ConfigError("connection.quota.backend: must be memory, sqlite or redis")


def shared_quota(conn: Connection) -> Quota:
    """The process-wide store of this connection's budget (one per app + tenant and settings)."""
    return shared(("quota", conn.budget_key, repr(conn.quota), conn.state_dir), lambda: make_quota(conn))
