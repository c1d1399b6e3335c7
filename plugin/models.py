"""Plain values passed between the client, the session and the mapping."""

from __future__ import annotations

from dataclasses import dataclass
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
