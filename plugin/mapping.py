"""Map parsed items and lookup outcomes onto incident-enrichment records and the envelope.

Pure functions, no I/O: everything they need (options, retrieval times, counts, the quota
state) is passed in, so tests can feed recorded outcomes through tables.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable

from plugin.ips import ParsedItem
from plugin.models import IpStats, LookupOutcome

SCHEMA_VERSION = "1.0"
PROVIDER = "Microsoft Defender for Endpoint"
RECORD_STATUSES = ("enriched", "not_seen", "skipped", "invalid", "deferred", "failed")
# Statuses that answer the question (including "nothing to ask"); the rest need a retry or a fix.
_ANSWERED = frozenset({"enriched", "not_seen", "skipped"})

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_ONE_MS = timedelta(milliseconds=1)

# The error codes each outcome kind may carry (SPEC.md), the first being the fallback for an
# outcome without a known code, and the message used when it has none. The session sets both;
# the fallback keeps a record schema-valid rather than failing the whole call over one label.
_ERROR_CODES = {
    "invalid": (("api_invalid_ip",), "Defender rejected the IP address (HTTP 400)"),
    "deferred": (("quota_wait_exceeded", "throttled"), "deferred: waiting would exceed max_wait_seconds"),
    "failed": (("http_error", "timeout", "connection_error", "server_error", "bad_response"), "the lookup failed"),
}

# Notes may carry the API's error text: bound them. Raw input is never rendered at all.
_MAX_NOTE = 160
# Backslash-escaped in cells: column breaks, emphasis, code, links/images, HTML and entities.
_MD_SPECIAL = frozenset("\\|`*_[]<>#~!&")


@dataclass(frozen=True)
class MappingOptions:
    """The call's inputs that shape records: look-back window, band thresholds, portal."""

    look_back_hours: int = 720
    rare_max: int = 10
    uncommon_max: int = 100
    recent_first_seen_days: float = 7
    portal_base: str = "https://security.microsoft.com"


def build_record(item: ParsedItem, outcome: LookupOutcome | None, options: MappingOptions) -> dict:
    """Build the record of one input item; `outcome` is None for skipped and invalid items."""
    if item.status == "invalid":
        return _record(item, "invalid", observable=None, error=_error(item.code, item.reason))
    if item.status == "skipped":
        return _record(item, "skipped", observable=ip_observable(item.ip), error=_error(item.code, item.reason))
    if outcome is None:
        raise ValueError("a callable item needs a lookup outcome")

    if outcome.kind in ("stats", "not_found"):
        if outcome.retrieved_at is None:
            raise ValueError("an answered lookup needs retrieved_at")
        if outcome.kind == "stats" and outcome.stats is None:
            raise ValueError("a stats outcome needs stats")
        stats = outcome.stats
        if stats is None or stats.prevalence <= 0:
            # A 404 (the older API) and prevalence 0 both mean "never seen", and not_seen has
            # null times (SPEC.md): dates sent alongside a 0 describe nothing the record reports.
            stats = IpStats(ip=item.ip, prevalence=0, first_seen=None, last_seen=None)
        return _record(
            item,
            "enriched" if stats.prevalence > 0 else "not_seen",
            observable=ip_observable(item.ip),
            enrichment=build_enrichment(item.ip, stats, outcome.retrieved_at, options),
            assessment=assess(stats, outcome.retrieved_at, options),
            cached=outcome.cached,
        )

    if outcome.kind not in _ERROR_CODES:
        raise ValueError(f"unknown outcome kind {outcome.kind!r}")
    codes, default_message = _ERROR_CODES[outcome.kind]
    # The API's 400 arrives with the API's own code (InvalidIpAddress): reported as api_invalid_ip.
    code = outcome.error_code if outcome.error_code in codes else codes[0]
    if outcome.kind == "invalid":
        retry_after = None
    elif outcome.kind == "deferred":
        # A deferred record always says when to come back, never "right now minus something".
        retry_after = _round_up(outcome.retry_after_seconds or 0.0)
    else:
        retry_after = None if outcome.retry_after_seconds is None else _round_up(outcome.retry_after_seconds)
    error = _error(code, outcome.message or default_message, retry_after)
    return _record(item, outcome.kind, observable=ip_observable(item.ip), error=error, cached=outcome.cached)


def ip_observable(ip: str) -> dict:
    """The OCSF observable of a canonical IP."""
    return {"name": "ip", "type": "IP Address", "type_id": 2, "value": ip}


def build_enrichment(ip: str, stats: IpStats, retrieved_at: datetime, options: MappingOptions) -> dict:
    """The OCSF enrichment object for an answered lookup (prevalence 0 included)."""
    return {
        "name": "ip",
        "value": ip,
        "type": "prevalence",
        "provider": PROVIDER,
        "created_time": to_epoch_ms(retrieved_at),
        "created_time_dt": to_rfc3339(retrieved_at),
        "src_url": portal_url(ip, options.portal_base),
        "data": {
            "organization_prevalence": stats.prevalence,
            "seen": stats.prevalence > 0,
            "look_back_hours": options.look_back_hours,
            "first_seen_time": _epoch_or_none(stats.first_seen),
            "first_seen_time_dt": _rfc3339_or_none(stats.first_seen),
            "last_seen_time": _epoch_or_none(stats.last_seen),
            "last_seen_time_dt": _rfc3339_or_none(stats.last_seen),
        },
    }


def portal_url(ip: str, portal_base: str) -> str:
    """The Defender portal page of an IP."""
    # `ip` is canonical (only [0-9a-f.:]), so it needs no quoting in the path.
    return f"{portal_base.rstrip('/')}/ip/{ip}/overview"


def prevalence_band(prevalence: int, options: MappingOptions) -> str:
    """Band a prevalence: none (0), rare (<= rare_max), uncommon (<= uncommon_max), common."""
    if prevalence <= 0:
        return "none"
    if prevalence <= options.rare_max:
        return "rare"
    if prevalence <= options.uncommon_max:
        return "uncommon"
    return "common"


def assess(stats: IpStats, retrieved_at: datetime, options: MappingOptions) -> dict:
    """The analyst-facing assessment: prevalence band and whether it was first seen recently."""
    recent = False
    if stats.prevalence > 0 and stats.first_seen is not None:
        window_start = retrieved_at - timedelta(days=options.recent_first_seen_days)
        # A first-seen time slightly after our clock (skew) counts as recent, not as old.
        recent = stats.first_seen >= window_start
    return {"prevalence_band": prevalence_band(stats.prevalence, options), "recently_first_seen": recent}


def to_epoch_ms(dt: datetime) -> int:
    """Milliseconds since the Unix epoch of a timezone-aware datetime (truncated, exact)."""
    _require_aware(dt)
    # Integer timedelta division: no float rounding for far-off dates.
    return (dt - _EPOCH) // _ONE_MS


def to_rfc3339(dt: datetime) -> str:
    """RFC 3339 in UTC with "Z": seconds when the millisecond fraction is zero, else milliseconds."""
    _require_aware(dt)
    utc = dt.astimezone(timezone.utc)
    # Truncated to milliseconds like to_epoch_ms, so both forms name the same instant.
    millis = utc.microsecond // 1000
    base = (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}"
        f"T{utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
    )
    return f"{base}Z" if millis == 0 else f"{base}.{millis:03d}Z"


def summarise(records: list[dict], api_calls: int, cache_hits: int) -> dict:
    """Count records by status, plus the API calls made and cache hits served."""
    counts = Counter(record["status"] for record in records)
    summary = {"requested": len(records)}
    summary.update({status: counts.get(status, 0) for status in RECORD_STATUSES})
    summary["api_calls"] = api_calls
    summary["cache_hits"] = cache_hits
    return summary


def call_status(records: Iterable[dict]) -> str:
    """success when every record is answered (enriched/not_seen/skipped), failed when none is, else partial."""
    answered = [record["status"] in _ANSWERED for record in records]
    # An empty list is vacuously success; the action rejects an empty `ips` before this.
    if all(answered):
        return "success"
    if not any(answered):
        return "failed"
    return "partial"


def render_markdown(records: list[dict]) -> str:
    """A GitHub-flavoured markdown table of the records, one row each, safe to render."""
    lines = [
        "| IP | Status | Prevalence | First seen | Last seen | Note |",
        "| --- | --- | ---: | --- | --- | --- |",
    ]
    for record in records:
        lines.append("| " + " | ".join(_md_cell(cell) for cell in table_row(record)) + " |")
    return "\n".join(lines) + "\n"


def table_row(record: dict) -> tuple[str, str, str, str, str, str]:
    """IP, status, prevalence, first seen, last seen and note of a record, as plain text cells."""
    observable = record.get("observable")
    # Never the raw input: it may be 10 KB of junk or a secret pasted by mistake.
    ip = observable["value"] if observable else "(invalid input)"
    data = (record.get("enrichment") or {}).get("data") or {}
    prevalence = data.get("organization_prevalence")
    return (ip, record["status"], "" if prevalence is None else str(prevalence),
            data.get("first_seen_time_dt") or "", data.get("last_seen_time_dt") or "", record_note(record))


def build_envelope(records: list[dict], *, api_calls: int, cache_hits: int, quota_state: dict) -> dict:
    """The enrich_ip output: status, summary, records in input order, quota state and markdown."""
    return {
        "schema_version": SCHEMA_VERSION,
        "action": "enrich_ip",
        "status": call_status(records),
        "summary": summarise(records, api_calls, cache_hits),
        "records": records,
        "quota": quota_state,
        "markdown": render_markdown(records),
    }


def _record(
    item: ParsedItem,
    status: str,
    *,
    observable: dict | None,
    enrichment: dict | None = None,
    assessment: dict | None = None,
    cached: bool = False,
    error: dict | None = None,
) -> dict:
    return {
        "input": item.input,
        "status": status,
        "observable": observable,
        "enrichment": enrichment,
        "assessment": assessment,
        "cached": cached,
        "error": error,
    }


def _error(code: str, message: str, retry_after_seconds: float | None = None) -> dict:
    return {"code": code, "message": message, "retry_after_seconds": retry_after_seconds}


def _round_up(seconds: float) -> float:
    """Round a wait up to the next 0.1 s and never below 0, so a retry is never early."""
    # round() first so float noise (0.30000000000000004) does not push 0.3 up to 0.4.
    return max(0.0, math.ceil(round(seconds * 10, 6)) / 10)


def _epoch_or_none(dt: datetime | None) -> int | None:
    return None if dt is None else to_epoch_ms(dt)


def _rfc3339_or_none(dt: datetime | None) -> str | None:
    return None if dt is None else to_rfc3339(dt)


def _require_aware(dt: datetime) -> None:
    # A naive datetime could be local time; guessing would shift every timestamp silently.
    if dt.tzinfo is None or dt.utcoffset() is None:
        raise ValueError("datetime must be timezone-aware")


def record_note(record: dict) -> str:
    """One line for an analyst: the assessment for answers, the reason for the rest, and cache origin."""
    parts = []
    assessment = record.get("assessment")
    if assessment:
        band = assessment["prevalence_band"]
        parts.append("not seen in the organisation" if band == "none" else f"{band} in the organisation")
        if assessment["recently_first_seen"]:
            parts.append("first seen recently")
    error = record.get("error")
    if error:
        parts.append(_truncate(str(error.get("message") or error.get("code")), _MAX_NOTE))
        if error.get("retry_after_seconds") is not None:
            parts.append(f"retry after {error['retry_after_seconds']:.1f} s")
    if record.get("cached"):
        parts.append("cached")
    return "; ".join(parts)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _md_cell(text: str) -> str:
    """Escape text for one GFM table cell: one line, no column breaks, no markup, no HTML."""
    out = []
    for char in text:
        if char in _MD_SPECIAL:
            out.append("\\" + char)
        elif not char.isprintable():
            # Newlines and other control/format characters would break the row.
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)
