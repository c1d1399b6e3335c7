"""Deterministic per-IP statistics served by the emulator's `/api/ips/{ip}/stats`.

The same IP always gets the same answer (across runs, hosts and Python versions: only
integer arithmetic on SHA-256 bytes). Rules, in order:

1. `10.209.67.177` (the documentation's example) answers prevalence 63515,
   first seen `2017-07-30T13:36:06Z`, last seen `2017-08-29T13:32:59Z`.
2. `192.0.2.0/24` (TEST-NET-1): 404 NotFound, the older "never seen" behaviour.
3. `198.51.100.0/24` (TEST-NET-2): 200 with prevalence 0 and null dates (current "never seen").
4. `203.0.113.0/24` (TEST-NET-3): always seen with prevalence 1..10 ("rare"), first seen
   0-3 days before the reference time, last seen between first seen and the reference time.
5. Every other IP: h = sha256(canonical IP string). h[0] < 51 (about 1 in 5): never seen
   (200, prevalence 0, null dates). Otherwise the prevalence band comes from h[1]
   (1-10: 45 %, 11-100: 20 %, 101-1,000: 18 %, 1,001-10,000: 12 %, 10,001-100,000: 5 %) and
   the value inside the band from h[2:6]. Last seen is h[6:10] mod 60 days before the
   reference time; first seen is 1 s to 7 days before last seen when h[10] < 32 (one in
   eight), else 1 s to 3 years before it. Each date gets a 7-digit fraction of a second
   when the low bit of h[15] (first) or h[20] (last) is set, so clients meet both forms.

The canonical IP is `ipaddress`' form, with IPv4-mapped IPv6 as IPv4. The reference time
defaults to 2026-12-01T00:00:00Z; pass `reference_time` (e.g. now) to make TEST-NET-3 IPs
"recently first seen". `lookBackHours` is validated by the route but does not change the data.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
from dataclasses import dataclass

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DOC_IP = "10.209.67.177"
REFERENCE_TIME = _dt.datetime(2026, 12, 1, tzinfo=_dt.timezone.utc)
NOT_FOUND_NET = ipaddress.ip_network("192.0.2.0/24")
NEVER_SEEN_NET = ipaddress.ip_network("198.51.100.0/24")
RARE_NET = ipaddress.ip_network("203.0.113.0/24")

_DAY = 86400
# (upper bound of h[1], low, high): cumulative thresholds over 0..255 for the bands.
_BANDS = ((115, 1, 10), (166, 11, 100), (212, 101, 1000), (243, 1001, 10000), (256, 10001, 100000))


@dataclass(frozen=True)
class IpStats:
    """What the emulator knows about one IP; `found` False means answer 404."""

    found: bool
    prevalence: int = 0
    first_seen: str | None = None
    last_seen: str | None = None


def parse_ip(text: str) -> IpAddress | None:
    """The address in `text`, or None when the API would answer 400 (zone indexes included)."""
    if "%" in text:
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def canonical(ip: IpAddress) -> IpAddress:
    """IPv4-mapped IPv6 as IPv4, anything else unchanged."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def format_time(moment: _dt.datetime, fraction_7: int | None = None) -> str:
    """ISO-8601 UTC like the live API: whole seconds, or a 7-digit fraction when given."""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if fraction_7 is not None:
        text += f".{fraction_7:07d}"
    return text + "Z"


def _u32(digest: bytes, start: int) -> int:
    return int.from_bytes(digest[start:start + 4], "big")


def _fraction(digest: bytes, flag_at: int) -> int | None:
    return _u32(digest, flag_at + 1) % 10_000_000 if digest[flag_at] & 1 else None


def _prevalence(digest: bytes) -> int:
    for upper, low, high in _BANDS:
        if digest[1] < upper:
            return low + _u32(digest, 2) % (high - low + 1)
    raise AssertionError("unreachable: the last band covers every byte value")


def _dates(digest: bytes, reference: _dt.datetime) -> tuple[str, str]:
    last = reference - _dt.timedelta(seconds=_u32(digest, 6) % (60 * _DAY))
    span_max = 7 * _DAY if digest[10] < 32 else 3 * 365 * _DAY
    # At least 1 s apart so a fraction on first seen can never put it after last seen.
    first = last - _dt.timedelta(seconds=1 + _u32(digest, 11) % span_max)
    return format_time(first, _fraction(digest, 15)), format_time(last, _fraction(digest, 20))


def _rare(digest: bytes, reference: _dt.datetime) -> IpStats:
    first = reference - _dt.timedelta(seconds=1 + _u32(digest, 6) % (3 * _DAY))
    seen_for = int((reference - first).total_seconds())
    last = first + _dt.timedelta(seconds=_u32(digest, 11) % (seen_for + 1))
    return IpStats(True, 1 + _u32(digest, 2) % 10, format_time(first), format_time(last))


def stats_for(ip: IpAddress, reference: _dt.datetime | None = None) -> IpStats:
    """The deterministic statistics of `ip` (see the module docstring for the rules)."""
    ip = canonical(ip)
    reference = reference or REFERENCE_TIME
    if str(ip) == DOC_IP:
        return IpStats(True, 63515, "2017-07-30T13:36:06Z", "2017-08-29T13:32:59Z")
    if ip in NOT_FOUND_NET:
        return IpStats(False)
    if ip in NEVER_SEEN_NET:
        return IpStats(True)
    digest = hashlib.sha256(str(ip).encode("ascii")).digest()
    if ip in RARE_NET:
        return _rare(digest, reference)
    if digest[0] < 51:
        return IpStats(True)
    first, last = _dates(digest, reference)
    return IpStats(True, _prevalence(digest), first, last)
