"""Parsing recorded 200 bodies of `GET /api/ips/{ip}/stats`, good and malformed."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from plugin.models import IpStats
from plugin.stats import BadResponse, parse_stats, parse_time

UTC = timezone.utc
IP = "10.209.67.177"
CONTEXT = "https://api.security.microsoft.com/api/$metadata#microsoft.windowsDefenderATP.api.InOrgIPStats"

# The documentation's example, as the live API sends it (both prevalence fields).
DOCS_EXAMPLE = {
    "@odata.context": CONTEXT,
    "ipAddress": IP,
    "orgPrevalence": "63515",
    "organizationPrevalence": 63515,
    "orgFirstSeen": "2017-07-30T13:36:06Z",
    "orgLastSeen": "2017-08-29T13:32:59Z",
}
FIRST = datetime(2017, 7, 30, 13, 36, 6, tzinfo=UTC)
LAST = datetime(2017, 8, 29, 13, 32, 59, tzinfo=UTC)


def _body(**fields):
    body = {"@odata.context": CONTEXT, "ipAddress": IP}
    body.update(fields)
    return body


GOOD = [
    ("docs example", DOCS_EXAMPLE, IpStats(IP, 63515, FIRST, LAST)),
    (
        "string prevalence only (legacy)",
        _body(orgPrevalence="42", orgFirstSeen="2017-07-30T13:36:06Z", orgLastSeen="2017-08-29T13:32:59Z"),
        IpStats(IP, 42, FIRST, LAST),
    ),
    (
        "int prevalence only (current)",
        _body(organizationPrevalence=7, orgFirstSeen="2017-07-30T13:36:06Z", orgLastSeen="2017-08-29T13:32:59Z"),
        IpStats(IP, 7, FIRST, LAST),
    ),
    ("legacy field sent as an int", _body(orgPrevalence=5, orgFirstSeen=None, orgLastSeen=None), IpStats(IP, 5, None, None)),
    (
        "never seen: '0' and nulls",
        _body(orgPrevalence="0", organizationPrevalence=0, orgFirstSeen=None, orgLastSeen=None),
        IpStats(IP, 0, None, None),
    ),
    ("never seen: string only", _body(orgPrevalence="0", orgFirstSeen=None, orgLastSeen=None), IpStats(IP, 0, None, None)),
    (
        "7-digit fractions, truncated to microseconds",
        _body(
            organizationPrevalence=3,
            orgFirstSeen="2026-11-20T08:15:42.1234567Z",
            orgLastSeen="2026-11-21T09:00:00.9999999Z",
        ),
        IpStats(
            IP,
            3,
            datetime(2026, 11, 20, 8, 15, 42, 123456, tzinfo=UTC),
            datetime(2026, 11, 21, 9, 0, 0, 999999, tzinfo=UTC),
        ),
    ),
    (
        "+00:00 offset",
        _body(organizationPrevalence=3, orgFirstSeen="2017-07-30T13:36:06+00:00", orgLastSeen="2017-08-29T13:32:59.5+00:00"),
        IpStats(IP, 3, FIRST, datetime(2017, 8, 29, 13, 32, 59, 500000, tzinfo=UTC)),
    ),
    ("missing dates count as null", _body(organizationPrevalence=12), IpStats(IP, 12, None, None)),
    ("no @odata.context, no ipAddress", {"organizationPrevalence": 1}, IpStats(IP, 1, None, None)),
    (
        "ipAddress in another spelling: ours wins",
        {"ipAddress": "::FFFF:10.209.67.177", "organizationPrevalence": 2},
        IpStats(IP, 2, None, None),
    ),
    (
        "current field wins over a disagreeing legacy one",
        _body(organizationPrevalence=9, orgPrevalence="8"),
        IpStats(IP, 9, None, None),
    ),
    (
        "malformed current field falls back to the legacy one",
        _body(organizationPrevalence="abc", orgPrevalence="8"),
        IpStats(IP, 8, None, None),
    ),
    ("null current field falls back", _body(organizationPrevalence=None, orgPrevalence="8"), IpStats(IP, 8, None, None)),
    (
        "prevalence 0 with dates keeps them",
        _body(organizationPrevalence=0, orgFirstSeen="2017-07-30T13:36:06Z", orgLastSeen="2017-08-29T13:32:59Z"),
        IpStats(IP, 0, FIRST, LAST),
    ),
    (
        "prevalence 0 with a junk date does not fail",
        _body(organizationPrevalence=0, orgFirstSeen="yesterday", orgLastSeen=17),
        IpStats(IP, 0, None, None),
    ),
    ("unknown extra fields are ignored", _body(organizationPrevalence=4, extra={"a": [1]}), IpStats(IP, 4, None, None)),
    (
        ".NET DateTime.MinValue means no value",
        _body(organizationPrevalence=2, orgFirstSeen="0001-01-01T00:00:00Z", orgLastSeen="1969-12-31T23:59:59.999Z"),
        IpStats(IP, 2, None, None),
    ),
    (
        "the epoch itself is a time",
        _body(organizationPrevalence=2, orgFirstSeen="1970-01-01T00:00:00Z"),
        IpStats(IP, 2, datetime(1970, 1, 1, tzinfo=UTC), None),
    ),
    ("a very large organisation", _body(orgPrevalence="123456789012345"), IpStats(IP, 123456789012345, None, None)),
]


@pytest.mark.parametrize(("body", "expected"), [c[1:] for c in GOOD], ids=[c[0] for c in GOOD])
def test_parse_stats_good(body, expected):
    assert parse_stats(body, IP) == expected


BAD = [
    ("array body", []),
    ("string body", "x"),
    ("null body", None),
    ("number body", 63515),
    ("empty object", {}),
    ("only ipAddress", {"ipAddress": IP}),
    ("string in the int field, no legacy", {"organizationPrevalence": "abc"}),
    ("digit string in the int field only", {"organizationPrevalence": "5"}),  # the current field is an int
    ("negative int", {"organizationPrevalence": -1}),
    ("negative legacy string", {"orgPrevalence": "-1"}),
    ("bool true", {"organizationPrevalence": True}),
    ("bool legacy", {"orgPrevalence": False}),
    ("float", {"organizationPrevalence": 1.5}),
    ("nested dict", {"organizationPrevalence": {"value": 5}}),
    ("list", {"organizationPrevalence": [5]}),
    ("empty legacy string", {"orgPrevalence": ""}),
    ("legacy string with spaces", {"orgPrevalence": " 5"}),
    ("legacy string, Unicode digits", {"orgPrevalence": "\u0665"}),
    ("legacy string, too many digits", {"orgPrevalence": "9" * 5000}),
    ("both null", {"organizationPrevalence": None, "orgPrevalence": None}),
    ("date 'yesterday'", {"organizationPrevalence": 3, "orgFirstSeen": "yesterday"}),
    ("date as epoch number", {"organizationPrevalence": 3, "orgLastSeen": 1501421766}),
    ("date without offset", {"organizationPrevalence": 3, "orgFirstSeen": "2017-07-30T13:36:06"}),
    ("date with another offset", {"organizationPrevalence": 3, "orgFirstSeen": "2017-07-30T13:36:06+02:00"}),
    ("impossible date", {"organizationPrevalence": 3, "orgLastSeen": "2017-02-30T13:36:06Z"}),
    ("date as object", {"organizationPrevalence": 3, "orgLastSeen": {"t": "2017-08-29T13:32:59Z"}}),
]


@pytest.mark.parametrize("body", [c[1] for c in BAD], ids=[c[0] for c in BAD])
def test_parse_stats_bad(body):
    with pytest.raises(BadResponse) as caught:
        parse_stats(body, IP)
    assert isinstance(caught.value, ValueError)
    assert len(str(caught.value)) < 120


def test_bad_response_never_includes_the_body():
    secretish = "tok_" + "A" * 5000
    for body in (
        {"organizationPrevalence": secretish},
        {"organizationPrevalence": 1, "orgFirstSeen": secretish},
        [secretish],
        secretish,
    ):
        with pytest.raises(BadResponse) as caught:
            parse_stats(body, IP)
        assert "tok_" not in str(caught.value)


def test_bad_date_names_the_field():
    with pytest.raises(BadResponse, match="orgLastSeen"):
        parse_stats({"organizationPrevalence": 3, "orgLastSeen": "yesterday"}, IP)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("2017-07-30T13:36:06Z", FIRST),
        ("2017-07-30T13:36:06+00:00", FIRST),
        ("2017-07-30T13:36:06.1Z", datetime(2017, 7, 30, 13, 36, 6, 100000, tzinfo=UTC)),
        ("2017-07-30T13:36:06.123Z", datetime(2017, 7, 30, 13, 36, 6, 123000, tzinfo=UTC)),
        ("2017-07-30T13:36:06.123456Z", datetime(2017, 7, 30, 13, 36, 6, 123456, tzinfo=UTC)),
        ("2017-07-30T13:36:06.1234567Z", datetime(2017, 7, 30, 13, 36, 6, 123456, tzinfo=UTC)),
        ("2017-07-30T13:36:06.9999999Z", datetime(2017, 7, 30, 13, 36, 6, 999999, tzinfo=UTC)),
        ("2017-07-30T13:36:06.0000000Z", FIRST),
        ("2024-02-29T23:59:59Z", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
    ],
)
def test_parse_time_good(value, expected):
    parsed = parse_time(value)
    assert parsed == expected
    if parsed is not None:
        assert parsed.utcoffset().total_seconds() == 0


@pytest.mark.parametrize(
    "value",
    [
        "",
        "yesterday",
        "2017-07-30",
        "2017-07-30 13:36:06Z",
        "2017-07-30T13:36Z",
        "2017-07-30T13:36:06",
        "2017-07-30T13:36:06.Z",
        "2017-07-30T13:36:06.12345678Z",
        "2017-07-30T13:36:06-05:00",
        "2017-07-30T13:36:06+01:00",
        "2017-07-30T25:00:00Z",
        "2017-13-01T00:00:00Z",
        "2023-02-29T00:00:00Z",
        "\u0662017-07-30T13:36:06Z",
        " 2017-07-30T13:36:06Z",
        "2017-07-30T13:36:06Z\n",
        1501421766,
        1501421766.0,
        True,
        [],
        {},
    ],
)
def test_parse_time_bad(value):
    with pytest.raises(BadResponse):
        parse_time(value)
