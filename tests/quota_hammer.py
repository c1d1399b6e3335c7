"""Code the multi-process quota tests run in child processes (spawned: it must be importable by name)."""

from __future__ import annotations

import time

from plugin.config import QuotaSettings, Window


def open_quota(backend: str, target: str, budget_key: str, limits: tuple[tuple[int, float], ...], share: float = 0.95):
    settings = QuotaSettings(backend=backend, share=share, limits=tuple(Window(c, p) for c, p in limits))
    if backend == "sqlite":
        from plugin.quota_sqlite import SQLiteQuota

        return SQLiteQuota(settings, target, budget_key)
    from plugin.quota_redis import RedisQuota

    return RedisQuota(settings, target, budget_key)


def hammer(backend, target, budget_key, limits, seconds, barrier, results) -> None:
    """Take every permit this process can for `seconds` after all workers are ready; report the
    backend's own stamps (the time it recorded each send under its lock), sorted."""
    quota = open_quota(backend, target, budget_key, limits)
    quota.state("analyst")  # connect before the start line
    stamps = []
    barrier.wait()
    end = time.time() + seconds
    while time.time() < end:
        wait = quota.try_acquire("analyst")
        if wait == 0:
            stamps.append(quota.last_permit_at)
        else:
            # Sleep less than told, now and then, so the processes keep racing for each slot.
            time.sleep(min(wait, 0.003, max(0.0, end - time.time())))
    results.put(stamps)


def pause_budget(backend, target, budget_key, limits, seconds) -> None:
    """Another process saw a 429: it pauses the shared budget for `seconds`."""
    open_quota(backend, target, budget_key, limits).pause(seconds)
