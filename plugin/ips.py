"""Turn the caller's `ips` input into items, and each item into a canonical IP or a reason.

Pure functions, no I/O. The canonical IP is what goes into the request path, so the checks
here are the only thing that stands between an input string and a URL: every accepted IP is
`str(ipaddress.ip_address(...))` and holds only `[0-9a-f.:]`.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Literal

ItemStatus = Literal["callable", "skipped", "invalid"]

# The longest textual IP is an expanded IPv4-mapped IPv6 address:
# "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255" is 45 characters.
MAX_IP_LENGTH = 45

INVALID_CODE = "invalid_ip"

# Everything an IP literal can hold. ASCII only: `ipaddress` parses octets with int(), which
# takes non-ASCII digits ("١.٢.٣.٤") unless the library guards it, so we never rely on that.
_IP_CHARS = frozenset("0123456789abcdefABCDEF.:")

# Shapes people paste instead of a bare IP; matched only to explain the rejection.
_CIDR = re.compile(r"[0-9a-fA-F.:]+/[0-9]{1,3}", re.ASCII)
_IPV4_WITH_PORT = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,3}){3}:[0-9]{1,5}", re.ASCII)
_BRACKETED = re.compile(r"\[[0-9a-fA-F.:]*\](?P<port>:[0-9]{1,5})?", re.ASCII)

_SKIP_REASONS = {
    "loopback": "loopback address: no lookup needed",
    "unspecified": "unspecified address: no lookup needed",
    "multicast": "multicast address: no lookup needed",
    "link_local": "link-local address: no lookup needed",
}


@dataclass(frozen=True)
class ParsedItem:
    """One input item: the text as given, and its canonical IP or why it has none to look up."""

    input: str
    ip: str | None
    status: ItemStatus
    code: str | None
    reason: str | None


def split_items(ips: list[str] | str) -> list[str]:
    """Return a list's items as given, or split a string on commas and whitespace."""
    if isinstance(ips, str):
        # str.split() uses the same whitespace definition as str.strip() in parse_item,
        # so "1.1.1.1\u00a02.2.2.2" splits here exactly where a list item would be trimmed.
        return ips.replace(",", " ").split()
    return list(ips)


def parse_item(item: str) -> ParsedItem:
    """Classify one item as callable (with its canonical IP), skipped, or invalid."""
    # str.strip() also drops Unicode whitespace (no-break space, ideographic space) that
    # copy-paste from chat and mail brings along; what is left is still checked strictly.
    text = item.strip()
    reason = _rejection(text)
    if reason is not None:
        return _invalid(item, reason)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        # The library's message echoes the text, so it is replaced with our own.
        return _invalid(item, _not_an_ip_reason(text))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    canonical = str(address)
    skip = _skip_code(address)
    if skip is not None:
        return ParsedItem(item, canonical, "skipped", skip, _SKIP_REASONS[skip])
    return ParsedItem(item, canonical, "callable", None, None)


def _invalid(item: str, reason: str) -> ParsedItem:
    return ParsedItem(item, None, "invalid", INVALID_CODE, reason)


def _rejection(text: str) -> str | None:
    """Why `text` cannot be an IP literal, judged on its characters alone; None if it may be one."""
    # Messages describe the problem and never quote the text: it may be a pasted secret.
    if not text:
        return "empty item: not an IP address"
    if len(text) > MAX_IP_LENGTH:
        return f"not an IP address: longer than {MAX_IP_LENGTH} characters"
    if "%" in text:
        return "zone indexes (%...) are not accepted: give the address without one"
    if _CIDR.fullmatch(text):
        return "CIDR ranges are not accepted: give a single IP address"
    if _IPV4_WITH_PORT.fullmatch(text):
        return "ports are not accepted: give the IP address without one"
    bracketed = _BRACKETED.fullmatch(text)
    if bracketed:
        if bracketed.group("port"):
            return "ports are not accepted: give the IP address without brackets or port"
        return "brackets are not accepted: give the bare IP address"
    if not text.isascii():
        return "not an IP address: contains non-ASCII characters (only ASCII digits, a-f, '.' and ':' are accepted)"
    if not text.isprintable():
        return "not an IP address: contains control characters"
    if not set(text) <= _IP_CHARS:
        return "not an IP address: contains characters an IP address cannot hold (only digits, a-f, '.' and ':')"
    return None


def _not_an_ip_reason(text: str) -> str:
    """Explain why characters that could form an IP did not parse as one."""
    if ":" not in text and re.search(r"(?:^|\.)0[0-9]", text):
        return "not an IP address: IPv4 octets with leading zeros are ambiguous (octal) and not accepted"
    if ":" not in text and text.count(".") != 3:
        return "not an IP address: IPv4 needs four dotted decimal octets"
    return "not an IP address"


def _skip_code(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """The skip code of an address Defender cannot say anything useful about, else None."""
    # Checked on the canonical address, so "::ffff:127.0.0.1" is loopback like 127.0.0.1.
    # 255.255.255.255 (limited broadcast) is none of these and stays callable: Defender
    # answers for it like for any other IP, and it may show up in network events.
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_multicast:
        return "multicast"
    if address.is_link_local:
        return "link_local"
    return None
