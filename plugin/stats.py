"""Parse the 200 body of `GET /api/ips/{ip}/stats` into an IpStats, trusting nothing in it.

Pure functions, no I/O. A malformed body raises BadResponse, whose message names the field
and the problem but never quotes the body (it is the server's text, of any size).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from plugin.models import IpStats

# ISO-8601 in UTC as Defender writes it: "2017-07-30T13:36:06Z", "...06.1234567Z" (.NET
# writes 7 fraction digits), or "+00:00". ASCII digits only ([0-9], not \d).
_TIME = re.compile(
    r"(?P<date>[0-9]{4}-[0-9]{2}-[0-9]{2})T(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
    r"(?:\.(?P<fraction>[0-9]{1,7}))?(?:Z|\+00:00)"
)

# .NET writes DateTime.MinValue ("0001-01-01T00:00:00Z") for "no value"; nothing Defender
# observed predates the Unix epoch, and epoch-ms fields downstream are >= 0.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)

# More digits than any organisation's device count; also keeps int() away from huge strings.
_MAX_PREVALENCE_DIGITS = 15


class BadResponse(ValueError):
    """The API answered 200 with a body we cannot read; the message never includes the body."""


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO-8601 UTC timestamp ("Z" or "+00:00", 0-7 fraction digits); None stays None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadResponse(f"timestamp is a {_json_type(value)}, not a string")
    match = _TIME.fullmatch(value)
    if match is None:
        raise BadResponse("timestamp is not ISO-8601 UTC")
    # Python 3.10's fromisoformat takes at most 6 fraction digits; the 7th (100 ns) is
    # below what we report anyway, so it is dropped, not rounded (rounding could carry
    # into the next second).
    fraction = (match["fraction"] or "")[:6].ljust(6, "0")
    try:
        parsed = datetime.fromisoformat(f"{match['date']}T{match['time']}.{fraction}")
    except ValueError:
        raise BadResponse("timestamp is not a valid date and time") from None
    return parsed.replace(tzinfo=timezone.utc)


def parse_stats(body: Any, ip: str) -> IpStats:
    """Read prevalence and first/last seen from a 200 body for the canonical `ip` we asked about."""
    if not isinstance(body, dict):
        raise BadResponse(f"response body is a {_json_type(body)}, not an object")
    prevalence = _prevalence(body)
    if prevalence == 0:
        # Nothing seen: the dates carry no meaning the record depends on, so a strange
        # date must not turn a clear "not seen" answer into a failure.
        first_seen = _lenient_time(body.get("orgFirstSeen"))
        last_seen = _lenient_time(body.get("orgLastSeen"))
    else:
        first_seen = _field_time(body, "orgFirstSeen")
        last_seen = _field_time(body, "orgLastSeen")
    # `ip` is the canonical address we put in the path; body["ipAddress"] is the server's
    # spelling of it and is not needed.
    return IpStats(ip=ip, prevalence=prevalence, first_seen=first_seen, last_seen=last_seen)


def _prevalence(body: dict) -> int:
    """organizationPrevalence (integer, current docs) first, else orgPrevalence (legacy string)."""
    current = body.get("organizationPrevalence")
    if _is_count(current):
        return current
    legacy = body.get("orgPrevalence")
    if _is_count(legacy):
        return legacy
    if (
        isinstance(legacy, str)
        and 0 < len(legacy) <= _MAX_PREVALENCE_DIGITS
        and legacy.isascii()
        and legacy.isdigit()
    ):
        return int(legacy)
    if current is None and legacy is None:
        raise BadResponse("response has neither organizationPrevalence nor orgPrevalence")
    raise BadResponse("organizationPrevalence/orgPrevalence is not a non-negative integer")


def _is_count(value: Any) -> bool:
    # bool is a subclass of int: `true` must not read as prevalence 1.
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _field_time(body: dict, field: str) -> datetime | None:
    try:
        parsed = parse_time(body.get(field))
    except BadResponse as exc:
        raise BadResponse(f"{field}: {exc}") from None
    return None if parsed is None or parsed < _EPOCH else parsed


def _lenient_time(value: Any) -> datetime | None:
    try:
        parsed = parse_time(value)
    except BadResponse:
        return None
    return None if parsed is None or parsed < _EPOCH else parsed


def _json_type(value: Any) -> str:
    """The JSON name of a value's type, for messages that must not quote the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
