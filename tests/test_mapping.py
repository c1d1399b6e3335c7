"""Mapping outcomes onto records, summaries, markdown and the enrich_ip envelope."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import pytest

from plugin import schemas
from plugin.errors import PluginError

from plugin.ips import parse_item
from plugin.mapping import (
    MappingOptions,
    assess,
    build_envelope,
    build_record,
    call_status,
    prevalence_band,
    render_markdown,
    summarise,
    to_epoch_ms,
    to_rfc3339,
)
from plugin.models import IpStats, LookupOutcome
from plugin.stats import parse_stats

UTC = timezone.utc
OPTIONS = MappingOptions()
RETRIEVED = datetime(2026, 12, 4, 16, 37, 30, 123456, tzinfo=UTC)
DOC_IP = "10.209.67.177"
DOC_BODY = {
    "ipAddress": DOC_IP,
    "orgPrevalence": "63515",
    "organizationPrevalence": 63515,
    "orgFirstSeen": "2017-07-30T13:36:06Z",
    "orgLastSeen": "2017-08-29T13:32:59Z",
}
QUOTA = {
    "backend": "memory",
    "lane": "playbook",
    "windows": [
        {"calls": 100, "per_seconds": 60, "cap": 95, "used": 3, "left": 82, "next_free_in_seconds": 0},
        {"calls": 1500, "per_seconds": 3600, "cap": 1425, "used": 3, "left": 1279, "next_free_in_seconds": 0},
    ],
    "cooldown_seconds": 0,
}
DAY = timedelta(days=1)
RECORD_KEYS = {"input", "status", "observable", "enrichment", "assessment", "cached", "error"}
OBSERVABLE_KEYS = {"name", "type", "type_id", "value"}


def _stats(prevalence, first=None, last=None, ip="8.8.8.8", **kw):
    return LookupOutcome("stats", stats=IpStats(ip, prevalence, first, last), retrieved_at=RETRIEVED, **kw)


# -- the documented example, end to end through parse_stats ------------------------------------


def test_documented_example_maps_exactly():
    item = parse_item(DOC_IP)
    outcome = LookupOutcome("stats", stats=parse_stats(DOC_BODY, item.ip), retrieved_at=RETRIEVED)
    record = build_record(item, outcome, OPTIONS)
    assert record == {
        "input": DOC_IP,
        "status": "enriched",
        "observable": {"name": "ip", "type": "IP Address", "type_id": 2, "value": DOC_IP},
        "enrichment": {
            "name": "ip",
            "value": DOC_IP,
            "type": "prevalence",
            "provider": "Microsoft Defender for Endpoint",
            "created_time": 1796402250123,
            "created_time_dt": "2026-12-04T16:37:30.123Z",
            "src_url": "https://security.microsoft.com/ip/10.209.67.177/overview",
            "data": {
                "organization_prevalence": 63515,
                "seen": True,
                "look_back_hours": 720,
                "first_seen_time": 1501421766000,
                "first_seen_time_dt": "2017-07-30T13:36:06Z",
                "last_seen_time": 1504013579000,
                "last_seen_time_dt": "2017-08-29T13:32:59Z",
            },
        },
        "assessment": {"prevalence_band": "common", "recently_first_seen": False},
        "cached": False,
        "error": None,
    }


# -- one record per outcome kind -------------------------------------------------------------

# (id, item, outcome, options, expected status, expected error (code, message, retry) or None)
OUTCOMES = [
    ("enriched", "8.8.8.8", _stats(5), OPTIONS, "enriched", None),
    ("not seen via prevalence 0", "8.8.8.8", _stats(0), OPTIONS, "not_seen", None),
    ("not seen via 404", "8.8.8.8", LookupOutcome("not_found", retrieved_at=RETRIEVED), OPTIONS, "not_seen", None),
    (
        "API 400",
        "2001:db8::1",
        LookupOutcome("invalid", error_code="InvalidIpAddress", message="Defender rejected the IP address (HTTP 400)",
                      retrieved_at=RETRIEVED),
        OPTIONS,
        "invalid",
        ("api_invalid_ip", "Defender rejected the IP address (HTTP 400)", None),
    ),
    (
        "deferred by the quota",
        "8.8.8.8",
        LookupOutcome("deferred", error_code="quota_wait_exceeded", message="quota: next permit in 41.2 s",
                      retry_after_seconds=41.23),
        OPTIONS,
        "deferred",
        ("quota_wait_exceeded", "quota: next permit in 41.2 s", 41.3),
    ),
    (
        "deferred by 429s",
        "8.8.8.8",
        LookupOutcome("deferred", error_code="throttled", message="429 Retry-After outlasted max_wait_seconds",
                      retry_after_seconds=30),
        OPTIONS,
        "deferred",
        ("throttled", "429 Retry-After outlasted max_wait_seconds", 30.0),
    ),
    (
        "deferred without a wait",
        "8.8.8.8",
        LookupOutcome("deferred", error_code="throttled", message="throttled"),
        OPTIONS,
        "deferred",
        ("throttled", "throttled", 0.0),
    ),
    (
        "deferred with a negative wait",
        "8.8.8.8",
        LookupOutcome("deferred", error_code="throttled", message="throttled", retry_after_seconds=-3.0),
        OPTIONS,
        "deferred",
        ("throttled", "throttled", 0.0),
    ),
    (
        "failed: timeout",
        "8.8.8.8",
        LookupOutcome("failed", error_code="timeout", message="no answer within 30 s"),
        OPTIONS,
        "failed",
        ("timeout", "no answer within 30 s", None),
    ),
    (
        "failed: server error",
        "8.8.8.8",
        LookupOutcome("failed", error_code="server_error", message="HTTP 503 after 3 attempts"),
        OPTIONS,
        "failed",
        ("server_error", "HTTP 503 after 3 attempts", None),
    ),
    (
        "failed: bad response",
        "8.8.8.8",
        LookupOutcome("failed", error_code="bad_response", message="response body is a array, not an object"),
        OPTIONS,
        "failed",
        ("bad_response", "response body is a array, not an object", None),
    ),
    (
        "API 400 without a message",
        "8.8.8.8",
        LookupOutcome("invalid", retrieved_at=RETRIEVED),
        OPTIONS,
        "invalid",
        ("api_invalid_ip", "Defender rejected the IP address (HTTP 400)", None),
    ),
    (
        "deferred with an unknown code and no message",
        "8.8.8.8",
        LookupOutcome("deferred", error_code="Weird Code", retry_after_seconds=0.30000000000000004),
        OPTIONS,
        "deferred",
        ("quota_wait_exceeded", "deferred: waiting would exceed max_wait_seconds", 0.3),
    ),
    (
        "failed with an unknown code",
        "8.8.8.8",
        LookupOutcome("failed", error_code="HTTP418", message="HTTP 418"),
        OPTIONS,
        "failed",
        ("http_error", "HTTP 418", None),
    ),
    (
        "failed with a retry hint",
        "8.8.8.8",
        LookupOutcome("failed", error_code="server_error", message="HTTP 503", retry_after_seconds=4.01),
        OPTIONS,
        "failed",
        ("server_error", "HTTP 503", 4.1),
    ),
    (
        "cached-looking 400 on IPv6",
        "2001:DB8::5",
        LookupOutcome("invalid", error_code="api_invalid_ip", message="400", retrieved_at=RETRIEVED),
        OPTIONS,
        "invalid",
        ("api_invalid_ip", "400", None),
    ),
    ("skipped", "127.0.0.1", None, OPTIONS, "skipped", ("loopback", "loopback address: no lookup needed", None)),
    ("skipped IPv6", "ff02::1", None, OPTIONS, "skipped", ("multicast", "multicast address: no lookup needed", None)),
    ("invalid locally", "10.0.0.0/24", None, OPTIONS, "invalid", ("invalid_ip", None, None)),
]


@pytest.mark.parametrize(
    ("item_text", "outcome", "options", "status", "error"),
    [c[1:] for c in OUTCOMES],
    ids=[c[0] for c in OUTCOMES],
)
def test_record_per_outcome(item_text, outcome, options, status, error):
    item = parse_item(item_text)
    record = build_record(item, outcome, options)
    assert set(record) == RECORD_KEYS
    assert record["input"] == item_text
    assert record["status"] == status
    assert record["cached"] is False

    if item.ip is None:
        assert record["observable"] is None
    else:
        assert record["observable"] == {"name": "ip", "type": "IP Address", "type_id": 2, "value": item.ip}

    if status in ("enriched", "not_seen"):
        assert record["error"] is None
        data = record["enrichment"]["data"]
        assert record["enrichment"]["value"] == item.ip
        assert data["seen"] is (status == "enriched")
        assert record["assessment"]["prevalence_band"] == ("none" if status == "not_seen" else "rare")
    else:
        assert record["enrichment"] is None
        assert record["assessment"] is None
        code, message, retry = error
        assert record["error"]["code"] == code
        assert record["error"]["message"] == (message if message is not None else item.reason)
        assert record["error"]["retry_after_seconds"] == retry


def test_not_found_is_not_seen_with_prevalence_zero_and_null_times():
    record = build_record(parse_item("8.8.4.4"), LookupOutcome("not_found", retrieved_at=RETRIEVED), OPTIONS)
    assert record["enrichment"]["data"] == {
        "organization_prevalence": 0,
        "seen": False,
        "look_back_hours": 720,
        "first_seen_time": None,
        "first_seen_time_dt": None,
        "last_seen_time": None,
        "last_seen_time_dt": None,
    }
    assert record["assessment"] == {"prevalence_band": "none", "recently_first_seen": False}


def test_prevalence_zero_with_dates_is_not_seen_with_null_times():
    outcome = _stats(0, RETRIEVED - DAY, RETRIEVED)
    record = build_record(parse_item("8.8.8.8"), outcome, OPTIONS)
    assert record["status"] == "not_seen"
    data = record["enrichment"]["data"]
    assert (data["first_seen_time"], data["first_seen_time_dt"], data["last_seen_time"], data["last_seen_time_dt"]) == (
        None, None, None, None)
    assert record["assessment"] == {"prevalence_band": "none", "recently_first_seen": False}


def test_input_is_kept_untrimmed_and_value_is_canonical():
    record = build_record(parse_item("  ::FFFF:10.1.2.3\n"), _stats(3, ip="10.1.2.3"), OPTIONS)
    assert record["input"] == "  ::FFFF:10.1.2.3\n"
    assert record["observable"]["value"] == "10.1.2.3"
    assert record["enrichment"]["src_url"] == "https://security.microsoft.com/ip/10.1.2.3/overview"


def test_options_flow_into_the_record():
    options = MappingOptions(look_back_hours=24, portal_base="https://security.microsoft.us/")
    record = build_record(parse_item("2001:db8::1"), _stats(5, ip="2001:db8::1"), options)
    assert record["enrichment"]["data"]["look_back_hours"] == 24
    assert record["enrichment"]["src_url"] == "https://security.microsoft.us/ip/2001:db8::1/overview"


def test_cached_and_created_time_come_from_the_outcome():
    earlier = datetime(2026, 12, 4, 15, 0, 0, tzinfo=UTC)
    outcome = LookupOutcome("stats", stats=IpStats("8.8.8.8", 2, None, None), retrieved_at=earlier, cached=True)
    record = build_record(parse_item("8.8.8.8"), outcome, OPTIONS)
    assert record["cached"] is True
    assert record["enrichment"]["created_time"] == to_epoch_ms(earlier)
    assert record["enrichment"]["created_time_dt"] == "2026-12-04T15:00:00Z"


@pytest.mark.parametrize(
    "outcome",
    [
        None,
        LookupOutcome("stats", stats=None, retrieved_at=RETRIEVED),
        LookupOutcome("stats", stats=IpStats("8.8.8.8", 1, None, None), retrieved_at=None),
        LookupOutcome("not_found", retrieved_at=None),
        LookupOutcome("mystery"),  # type: ignore[arg-type]
    ],
)
def test_inconsistent_outcomes_are_programming_errors(outcome):
    with pytest.raises(ValueError):
        build_record(parse_item("8.8.8.8"), outcome, OPTIONS)


# -- bands and recency ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prevalence", "options", "band"),
    [
        (0, OPTIONS, "none"),
        (1, OPTIONS, "rare"),
        (10, OPTIONS, "rare"),
        (11, OPTIONS, "uncommon"),
        (100, OPTIONS, "uncommon"),
        (101, OPTIONS, "common"),
        (63515, OPTIONS, "common"),
        (1, MappingOptions(rare_max=1, uncommon_max=2), "rare"),
        (2, MappingOptions(rare_max=1, uncommon_max=2), "uncommon"),
        (3, MappingOptions(rare_max=1, uncommon_max=2), "common"),
        (5, MappingOptions(rare_max=5, uncommon_max=5), "rare"),
        (6, MappingOptions(rare_max=5, uncommon_max=5), "common"),
        (7, MappingOptions(rare_max=10, uncommon_max=5), "rare"),  # inverted thresholds: rare wins
        (11, MappingOptions(rare_max=10, uncommon_max=5), "common"),
    ],
)
def test_prevalence_band(prevalence, options, band):
    assert prevalence_band(prevalence, options) == band


@pytest.mark.parametrize(
    ("first_seen", "options", "recent"),
    [
        (None, OPTIONS, False),
        (RETRIEVED, OPTIONS, True),
        (RETRIEVED - DAY, OPTIONS, True),
        (RETRIEVED - 7 * DAY, OPTIONS, True),  # exactly at the edge
        (RETRIEVED - 7 * DAY - timedelta(microseconds=1), OPTIONS, False),
        (RETRIEVED - 30 * DAY, OPTIONS, False),
        (RETRIEVED + timedelta(minutes=5), OPTIONS, True),  # clock skew: not "old"
        (RETRIEVED - timedelta(hours=13), MappingOptions(recent_first_seen_days=0.5), False),
        (RETRIEVED - timedelta(hours=11), MappingOptions(recent_first_seen_days=0.5), True),
        (RETRIEVED - 29 * DAY, MappingOptions(recent_first_seen_days=30), True),
    ],
)
def test_recently_first_seen(first_seen, options, recent):
    result = assess(IpStats("8.8.8.8", 4, first_seen, RETRIEVED), RETRIEVED, options)
    assert result == {"prevalence_band": "rare", "recently_first_seen": recent}


def test_never_recent_without_prevalence():
    result = assess(IpStats("8.8.8.8", 0, RETRIEVED, RETRIEVED), RETRIEVED, OPTIONS)
    assert result == {"prevalence_band": "none", "recently_first_seen": False}


def test_recently_first_seen_record():
    record = build_record(parse_item("8.8.8.8"), _stats(150, RETRIEVED - 2 * DAY, RETRIEVED), OPTIONS)
    assert record["assessment"] == {"prevalence_band": "common", "recently_first_seen": True}


# -- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dt", "epoch_ms", "text"),
    [
        (datetime(2017, 7, 30, 13, 36, 6, tzinfo=UTC), 1501421766000, "2017-07-30T13:36:06Z"),
        (datetime(2017, 8, 29, 13, 32, 59, tzinfo=UTC), 1504013579000, "2017-08-29T13:32:59Z"),
        (datetime(2026, 12, 4, 16, 37, 30, 123000, tzinfo=UTC), 1796402250123, "2026-12-04T16:37:30.123Z"),
        (datetime(2026, 12, 4, 16, 37, 30, 123999, tzinfo=UTC), 1796402250123, "2026-12-04T16:37:30.123Z"),
        (datetime(2026, 12, 4, 16, 37, 30, 999, tzinfo=UTC), 1796402250000, "2026-12-04T16:37:30Z"),
        (datetime(2026, 12, 4, 16, 37, 30, 1000, tzinfo=UTC), 1796402250001, "2026-12-04T16:37:30.001Z"),
        (datetime(1970, 1, 1, tzinfo=UTC), 0, "1970-01-01T00:00:00Z"),
        (datetime(2017, 7, 30, 15, 36, 6, tzinfo=timezone(timedelta(hours=2))), 1501421766000, "2017-07-30T13:36:06Z"),
        (datetime(2017, 7, 30, 8, 36, 6, 500000, tzinfo=timezone(timedelta(hours=-5))), 1501421766500,
         "2017-07-30T13:36:06.500Z"),
    ],
)
def test_times(dt, epoch_ms, text):
    assert to_epoch_ms(dt) == epoch_ms
    assert to_rfc3339(dt) == text


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError):
        to_epoch_ms(datetime(2017, 7, 30))
    with pytest.raises(ValueError):
        to_rfc3339(datetime(2017, 7, 30))


# -- summary and call status ----------------------------------------------------------------


def _records(*statuses):
    return [{"status": status} for status in statuses]


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (("enriched",), "success"),
        (("enriched", "enriched", "not_seen"), "success"),
        (("skipped",), "success"),
        (("skipped", "skipped"), "success"),
        (("enriched", "not_seen", "skipped"), "success"),
        (("invalid",), "failed"),
        (("invalid", "invalid"), "failed"),
        (("invalid", "deferred", "failed"), "failed"),
        (("deferred",), "failed"),
        (("failed",), "failed"),
        (("enriched", "invalid"), "partial"),
        (("skipped", "invalid"), "partial"),
        (("not_seen", "deferred"), "partial"),
        (("enriched", "failed", "skipped"), "partial"),
        ((), "success"),  # never reached: an empty `ips` is input_invalid
    ],
)
def test_call_status(statuses, expected):
    assert call_status(_records(*statuses)) == expected


def test_summarise_counts_every_status():
    records = _records("enriched", "enriched", "not_seen", "skipped", "invalid", "invalid", "deferred", "failed")
    assert summarise(records, api_calls=5, cache_hits=2) == {
        "requested": 8,
        "enriched": 2,
        "not_seen": 1,
        "skipped": 1,
        "invalid": 2,
        "deferred": 1,
        "failed": 1,
        "api_calls": 5,
        "cache_hits": 2,
    }


def test_summarise_empty():
    summary = summarise([], api_calls=0, cache_hits=0)
    assert summary["requested"] == 0
    assert all(value == 0 for value in summary.values())


# -- markdown -------------------------------------------------------------------------------


def _mixed_records():
    rows = [
        ("10.209.67.177", LookupOutcome("stats", stats=parse_stats(DOC_BODY, DOC_IP), retrieved_at=RETRIEVED)),
        ("8.8.4.4", LookupOutcome("not_found", retrieved_at=RETRIEVED, cached=True)),
        ("127.0.0.1", None),
        ("A|B\n| evil | row |" * 1000, None),
        ("fe80::1%eth0", None),
        ("9.9.9.9", LookupOutcome("deferred", error_code="throttled", message="429 | retry\nlater", retry_after_seconds=12.5)),
        ("1.0.0.1", LookupOutcome("failed", error_code="server_error", message="<b>x</b> " + "z" * 1000)),
        ("2001:db8::2", LookupOutcome("invalid", message="InvalidIpAddress", retrieved_at=RETRIEVED)),
    ]
    return [build_record(parse_item(text), outcome, OPTIONS) for text, outcome in rows]


def _cells(row: str) -> list[str]:
    """Split a GFM table row on unescaped pipes."""
    assert row.startswith("| ") and row.endswith(" |")
    return re.split(r"(?<!\\)\|", row[1:-1])


def test_markdown_one_row_per_record_and_well_formed():
    records = _mixed_records()
    markdown = render_markdown(records)
    lines = markdown.rstrip("\n").split("\n")
    assert lines[0] == "| IP | Status | Prevalence | First seen | Last seen | Note |"
    assert len(lines) == 2 + len(records)
    for line in lines:
        assert len(_cells(line)) == 6
        assert len(line) < 400


def test_markdown_content():
    lines = render_markdown(_mixed_records()).split("\n")
    assert lines[2] == (
        "| 10.209.67.177 | enriched | 63515 | 2017-07-30T13:36:06Z | 2017-08-29T13:32:59Z | common in the organisation |"
    )
    assert lines[3] == "| 8.8.4.4 | not\\_seen | 0 |  |  | not seen in the organisation; cached |"
    assert lines[4].startswith("| 127.0.0.1 | skipped |  |  |  | loopback address")
    assert lines[5].startswith("| (invalid input) | invalid |")
    assert lines[6].startswith("| (invalid input) | invalid |")
    assert "zone indexes" in lines[6]
    assert "retry after 12.5 s" in lines[7]
    assert "429 \\| retry later" in lines[7]
    assert "\\<b\\>" in lines[8] and "<b>" not in lines[8]
    assert lines[9].startswith("| 2001:db8::2 | invalid |")


def test_markdown_never_echoes_raw_input():
    markdown = render_markdown(_mixed_records())
    assert "evil" not in markdown
    assert "eth0" not in markdown


def test_markdown_escapes_pipes_in_every_cell():
    record = build_record(
        parse_item("8.8.8.8"),
        LookupOutcome("failed", error_code="http_error", message="a|b|c\r\nd"),
        OPTIONS,
    )
    row = render_markdown([record]).split("\n")[2]
    assert len(_cells(row)) == 6
    assert "a\\|b\\|c  d" in row


def test_markdown_empty():
    assert render_markdown([]).count("\n") == 2


# -- envelope -------------------------------------------------------------------------------


def test_envelope():
    records = _mixed_records()
    envelope = build_envelope(records, api_calls=4, cache_hits=1, quota_state=QUOTA)
    assert list(envelope) == ["schema_version", "action", "status", "summary", "records", "quota", "markdown"]
    assert envelope["schema_version"] == "1.0"
    assert envelope["action"] == "enrich_ip"
    assert envelope["status"] == "partial"
    assert envelope["summary"] == {
        "requested": 8, "enriched": 1, "not_seen": 1, "skipped": 1, "invalid": 3,
        "deferred": 1, "failed": 1, "api_calls": 4, "cache_hits": 1,
    }
    assert envelope["records"] == records
    assert envelope["quota"] == QUOTA
    assert envelope["markdown"] == render_markdown(records)


def _envelopes():
    mixed = _mixed_records()
    enriched = [build_record(parse_item(DOC_IP), LookupOutcome(
        "stats", stats=parse_stats(DOC_BODY, DOC_IP), retrieved_at=RETRIEVED), OPTIONS)]
    invalid = [build_record(parse_item("nope"), None, OPTIONS)]
    skipped = [build_record(parse_item("::1"), None, OPTIONS)]
    deferred = [build_record(parse_item("1.2.3.4"), LookupOutcome("deferred", error_code="quota_wait_exceeded",
                                                                    message="m", retry_after_seconds=3), OPTIONS)]
    quota_sqlite = _quota_with(backend="sqlite", lane="scheduled", cooldown_seconds=12.5)
    return [
        ("mixed", build_envelope(mixed, api_calls=4, cache_hits=1, quota_state=QUOTA), "partial"),
        ("enriched", build_envelope(enriched, api_calls=1, cache_hits=0, quota_state=QUOTA), "success"),
        ("invalid", build_envelope(invalid, api_calls=0, cache_hits=0, quota_state=QUOTA), "failed"),
        ("skipped", build_envelope(skipped, api_calls=0, cache_hits=0, quota_state=quota_sqlite), "success"),
        ("deferred", build_envelope(deferred, api_calls=0, cache_hits=0, quota_state=quota_sqlite), "failed"),
    ]


def _quota_with(**changes):
    quota = dict(QUOTA)
    quota.update(changes)
    return quota


ENVELOPES = _envelopes()


@pytest.mark.parametrize(("envelope", "status"), [e[1:] for e in ENVELOPES], ids=[e[0] for e in ENVELOPES])
def test_envelope_status(envelope, status):
    assert envelope["status"] == status
    assert envelope["summary"]["requested"] == len(envelope["records"])




@pytest.mark.parametrize("envelope", [e[1] for e in ENVELOPES], ids=[e[0] for e in ENVELOPES])
def test_envelope_validates_against_the_output_schema(envelope):
    schemas.validate_output(envelope, "schemas/incident-enrichment.schema.json")


def test_mapping_options_defaults():
    assert OPTIONS == MappingOptions(720, 10, 100, 7, "https://security.microsoft.com")


def _all_outcome_records():
    return [build_record(parse_item(case[1]), case[2], case[3]) for case in OUTCOMES]


def test_every_outcome_record_validates_against_the_output_schema():
    extra = [
        build_record(parse_item(text), None, OPTIONS)
        for text in ("", "x" * 10_000, "0.0.0.0", "::", "169.254.1.1", "fe80::1", "[::1]", "\u0661.1.1.1")
    ]
    extra.append(build_record(parse_item("8.8.8.8"), _stats(0, RETRIEVED - DAY, RETRIEVED), OPTIONS))
    records = _all_outcome_records() + extra
    envelope = build_envelope(records, api_calls=len(records), cache_hits=0, quota_state=QUOTA)
    schemas.validate_output(envelope, "schemas/incident-enrichment.schema.json")


def test_the_schema_check_is_real():
    envelope = build_envelope(_all_outcome_records(), api_calls=0, cache_hits=0, quota_state=QUOTA)
    envelope["records"][0]["enrichment"]["data"]["seen"] = "yes"
    with pytest.raises(PluginError, match="output"):
        schemas.validate_output(envelope, "schemas/incident-enrichment.schema.json")
