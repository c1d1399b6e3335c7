"""Plain values passed between the client, the session and the mapping."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal


@dataclass(frozen=True)
class IpStats:
    """Parsed body of a 200 from `GET /api/ips/{ip}/stats`."""

    ip: str
    prevalence: int
    first_seen: datetime | None
    last_seen: datetime | None


OutcomeKind = Literal["stats", "not_found", "invalid", "deferred", "failed"]


@dataclass(frozen=True)
class LookupOutcome:
    """What happened to one callable IP: stats, a 404, the API's 400, a deferral or a failure."""

    kind: OutcomeKind
    stats: IpStats | None = None
    error_code: str | None = None
    message: str | None = None
    retry_after_seconds: float | None = None
    retrieved_at: datetime | None = None  # timezone-aware UTC
    cached: bool = False


@dataclass
class Meter:
    """Counts what one action call spent: requests sent and results served from the cache."""

    api_calls: int = 0
    cache_hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_call(self) -> None:
        """Record one request sent to the API."""
        with self._lock:
            self.api_calls += 1

    def count_hit(self) -> None:
        """Record one result served from the cache."""
        with self._lock:
            self.cache_hits += 1
