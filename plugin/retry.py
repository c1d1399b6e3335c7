"""The retry policy as a value: which answers to retry, how long to back off, Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

RETRYABLE_STATUSES = frozenset({500, 502, 503, 504})
DEFAULT_RETRY_AFTER_SECONDS = 1.0  # a 429 without Retry-After still pauses everyone briefly
MAX_RETRY_AFTER_SECONDS = 3600.0  # an absurd Retry-After is capped at one hour window


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries with capped exponential backoff and full jitter (as urllib3/AWS SDKs)."""

    max_attempts: int = 4  # for 5xx, timeouts and connection errors; 429s are bounded by the wait budget
    backoff_base: float = 0.5
    backoff_max: float = 8.0

    def should_retry_status(self, status: int) -> bool:
        """True for transient server errors worth another attempt."""
        return status in RETRYABLE_STATUSES

    def backoff(self, failed_attempts: int, rng: random.Random) -> float:
        """Seconds to wait after `failed_attempts` failures: uniform in [0, min(max, base*2^(n-1))]."""
        ceiling = min(self.backoff_max, self.backoff_base * 2 ** max(0, failed_attempts - 1))
        return rng.uniform(0, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date), capped; None if absent or unreadable."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_SECONDS)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    now = now or datetime.now(timezone.utc)
    return min(max(0.0, (when - now).total_seconds()), MAX_RETRY_AFTER_SECONDS)
