"""The one Defender endpoint we call, and what each of its answers means for one IP."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Callable
from urllib.parse import quote

from plugin.models import LookupOutcome, Meter
from plugin.session import MAX_BODY_BYTES, CallDeferred, CallFailed, DefenderSession
from plugin.stats import BadResponse, parse_stats

STATS_PATH = "/api/ips/{ip}/stats"


class DefenderClient:
    """`GET /api/ips/{ip}/stats` for canonical IPs, each answer turned into a LookupOutcome."""

    def __init__(self, session: DefenderSession, wall_clock: Callable[[], datetime] | None = None):
        self.session = session
        self._now = wall_clock or (lambda: datetime.now(timezone.utc))

    def ip_stats(self, ip: str, *, look_back_hours: int, lane: str, deadline: float, meter: Meter) -> LookupOutcome:
        """Look one canonical IP up; deferrals and failures come back as outcomes, not exceptions."""
        # `ip` is canonical ([0-9a-f.:] only); quote() is a second lock on the path all the same.
        path = STATS_PATH.format(ip=quote(ip, safe=".:"))
        try:
            response = self.session.get(path, {"lookBackHours": look_back_hours}, lane=lane, deadline=deadline, meter=meter)
        except CallDeferred as deferred:
            return LookupOutcome("deferred", error_code=deferred.code, retry_after_seconds=deferred.retry_after_seconds,
                                 message=_deferred_message(deferred.code))
        except CallFailed as failed:
            return LookupOutcome("failed", error_code=failed.code, message=failed.message)
        retrieved_at = self._now()
        if response.status == 404:
            return LookupOutcome("not_found", retrieved_at=retrieved_at)
        if response.status == 400 and _api_error_code(response.body) == "InvalidIpAddress":
            return LookupOutcome("invalid", error_code="api_invalid_ip",
                                 message="the Defender API rejected the address (InvalidIpAddress)")
        if response.status != 200:
            return LookupOutcome("failed", error_code="http_error", message=(
                f"unexpected answer from the Defender API (HTTP {response.status}, {_api_error_code(response.body)})"))
        try:
            stats = parse_stats(_json_body(response.body), ip)
        except BadResponse as exc:
            return LookupOutcome("failed", error_code="bad_response", message=f"unreadable answer from the Defender API: {exc}")
        return LookupOutcome("stats", stats=stats, retrieved_at=retrieved_at)


def _json_body(body: bytes):
    """The JSON document of a body, or BadResponse for oversized or non-JSON bodies."""
    if len(body) > MAX_BODY_BYTES:
        raise BadResponse("body larger than 1 MiB")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadResponse("body is not JSON") from None


def _api_error_code(body: bytes) -> str:
    """The `error.code` of a Defender error body, or a placeholder; short and never the whole body."""
    try:
        code = json.loads(body)["error"]["code"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        return "no error code"
    return str(code)[:64] if isinstance(code, str) and code.isprintable() else "no error code"


def _deferred_message(code: str) -> str:
    """Analyst-readable reason for a deferral."""
    if code == "throttled":
        return "the Defender API throttled this app (429) past this call's max_wait_seconds; retry later"
    return "the shared quota has no room within this call's max_wait_seconds; retry later"
