"""Items and canonical IPs: a table of what people paste, and a property that nothing else gets through."""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from plugin.ips import MAX_IP_LENGTH, ParsedItem, parse_item, split_items

C, S, I = "callable", "skipped", "invalid"

# (item, status, canonical ip, code)
CASES = [
    # IPv4
    ("8.8.8.8", C, "8.8.8.8", None),
    ("10.209.67.177", C, "10.209.67.177", None),  # private is fine: Defender knows internal IPs
    ("192.168.0.1", C, "192.168.0.1", None),
    ("172.16.5.4", C, "172.16.5.4", None),
    ("100.64.0.1", C, "100.64.0.1", None),  # shared address space (CGNAT)
    ("1.1.1.1", C, "1.1.1.1", None),
    ("0.1.2.3", C, "0.1.2.3", None),  # a single "0" octet is not a leading zero
    ("255.255.255.255", C, "255.255.255.255", None),  # limited broadcast: callable by decision
    ("240.0.0.1", C, "240.0.0.1", None),  # reserved: still a valid question to ask
    # IPv6: compressed, expanded, uppercase
    ("2001:db8::1", C, "2001:db8::1", None),
    ("2001:0db8:0000:0000:0000:0000:0000:0001", C, "2001:db8::1", None),
    ("2001:DB8::1", C, "2001:db8::1", None),
    ("2001:DB8:0:0:0:0:0:ABCD", C, "2001:db8::abcd", None),
    ("2606:4700:4700::1111", C, "2606:4700:4700::1111", None),
    ("fd00::1", C, "fd00::1", None),  # unique local: like a private IPv4
    ("::1.2.3.4", C, "::102:304", None),  # deprecated IPv4-compatible form is not mapped
    # IPv4-mapped IPv6 becomes IPv4
    ("::ffff:10.1.2.3", C, "10.1.2.3", None),
    ("::FFFF:10.1.2.3", C, "10.1.2.3", None),
    ("::ffff:a01:203", C, "10.1.2.3", None),
    ("0:0:0:0:0:ffff:8.8.8.8", C, "8.8.8.8", None),
    ("2001:0db8:0000:0000:0000:0000:255.255.255.255", C, "2001:db8::ffff:ffff", None),  # 45 chars: the longest form
    # whitespace around
    ("  8.8.8.8  ", C, "8.8.8.8", None),
    ("\t8.8.8.8\n", C, "8.8.8.8", None),
    ("\r\n2001:db8::1 ", C, "2001:db8::1", None),
    ("\u00a08.8.8.8\u3000", C, "8.8.8.8", None),  # no-break and ideographic space, from chat/mail
    # skipped
    ("127.0.0.1", S, "127.0.0.1", "loopback"),
    ("127.255.0.9", S, "127.255.0.9", "loopback"),
    ("::1", S, "::1", "loopback"),
    ("::ffff:127.0.0.1", S, "127.0.0.1", "loopback"),
    ("0.0.0.0", S, "0.0.0.0", "unspecified"),
    ("::", S, "::", "unspecified"),
    ("0:0:0:0:0:0:0:0", S, "::", "unspecified"),
    ("224.0.0.1", S, "224.0.0.1", "multicast"),
    ("239.255.255.250", S, "239.255.255.250", "multicast"),
    ("ff02::1", S, "ff02::1", "multicast"),
    ("FF05::1:3", S, "ff05::1:3", "multicast"),
    ("169.254.1.1", S, "169.254.1.1", "link_local"),
    ("fe80::1", S, "fe80::1", "link_local"),
    ("FE80::ABCD", S, "fe80::abcd", "link_local"),
    ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", S, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "multicast"),
    # zone indexes, CIDRs, ports, brackets
    ("10.0.0.1%eth0", I, None, "invalid_ip"),
    ("fe80::1%eth0", I, None, "invalid_ip"),
    ("fe80::1%25eth0", I, None, "invalid_ip"),
    ("%2F", I, None, "invalid_ip"),
    ("10.0.0.0/24", I, None, "invalid_ip"),
    ("2001:db8::/32", I, None, "invalid_ip"),
    ("10.0.0.1:443", I, None, "invalid_ip"),
    ("[::1]", I, None, "invalid_ip"),
    ("[2001:db8::1]:443", I, None, "invalid_ip"),
    # ambiguous or legacy IPv4 spellings
    ("010.1.1.1", I, None, "invalid_ip"),
    ("1.2.3.04", I, None, "invalid_ip"),
    ("0x7f.1", I, None, "invalid_ip"),
    ("0x7f000001", I, None, "invalid_ip"),
    ("127.1", I, None, "invalid_ip"),
    ("2130706433", I, None, "invalid_ip"),
    ("1.2.3", I, None, "invalid_ip"),
    ("1.2.3.4.5", I, None, "invalid_ip"),
    ("256.1.1.1", I, None, "invalid_ip"),
    ("1.2.3.4.", I, None, "invalid_ip"),
    # not IPs at all
    ("example.com", I, None, "invalid_ip"),
    ("http://8.8.8.8/", I, None, "invalid_ip"),
    ("1.2.3.4/../x", I, None, "invalid_ip"),
    ("1.2.3.4?x=1", I, None, "invalid_ip"),
    ("1.2.3.4#frag", I, None, "invalid_ip"),
    ("1.2.3.4 5.6.7.8", I, None, "invalid_ip"),  # one list item holding two IPs
    ("2001:db8:::1", I, None, "invalid_ip"),
    ("2001:db8::g", I, None, "invalid_ip"),
    ("1:2:3:4:5:6:7:8:9", I, None, "invalid_ip"),
    ("-1.2.3.4", I, None, "invalid_ip"),
    ("+1.2.3.4", I, None, "invalid_ip"),
    # Unicode digits and lookalikes
    ("\uff11.\uff12.\uff13.\uff14", I, None, "invalid_ip"),  # full-width 1.2.3.4
    ("\u0661.\u0662.\u0663.\u0664", I, None, "invalid_ip"),  # Arabic-Indic 1.2.3.4
    ("1.2.3.\u0664", I, None, "invalid_ip"),
    ("\u0968.\u0968.\u0968.\u0968", I, None, "invalid_ip"),  # Devanagari 2.2.2.2
    ("2001:db8::\uff11", I, None, "invalid_ip"),
    ("1\u200b.2.3.4", I, None, "invalid_ip"),  # zero-width space is not whitespace
    ("1\uff0e2.3.4", I, None, "invalid_ip"),  # full-width full stop
    # control characters
    ("1.2.3.4\x00", I, None, "invalid_ip"),
    ("1.2\x00.3.4", I, None, "invalid_ip"),
    ("1.2.3.4\x7f", I, None, "invalid_ip"),
    ("\x1b[31m1.2.3.4", I, None, "invalid_ip"),
    # empty, blank, huge
    ("", I, None, "invalid_ip"),
    ("   ", I, None, "invalid_ip"),
    ("\n\t", I, None, "invalid_ip"),
    ("A" * 10_000, I, None, "invalid_ip"),
    ("1" * 10_240, I, None, "invalid_ip"),
    ("1.2.3.4" + " " * 10_000, C, "1.2.3.4", None),  # only whitespace beyond the IP
    ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555", I, None, "invalid_ip"),  # 46 chars
    ("client_secret=abc~DEF.ghi_jkl", I, None, "invalid_ip"),
]


def _case_id(text: str) -> str:
    shown = text if len(text) <= 30 else f"{text[:12]}...({len(text)} chars)"
    return ascii(shown)


@pytest.mark.parametrize(("item", "status", "ip", "code"), CASES, ids=[_case_id(c[0]) for c in CASES])
def test_parse_item_table(item, status, ip, code):
    parsed = parse_item(item)
    assert parsed == ParsedItem(item, ip, status, code, parsed.reason)
    assert parsed.input is item  # the record echoes the item exactly as given
    if status == "callable":
        assert parsed.reason is None
    else:
        assert parsed.reason  # skipped and invalid items say why


def test_table_is_large_enough():
    assert len(CASES) >= 60


INVALID_ITEMS = [c[0] for c in CASES if c[1] == I]


@pytest.mark.parametrize("item", INVALID_ITEMS, ids=[_case_id(i) for i in INVALID_ITEMS])
def test_invalid_reason_never_echoes_the_item(item):
    reason = parse_item(item).reason
    stripped = item.strip()
    if len(stripped) >= 3:  # shorter items are substrings of any sentence
        assert stripped not in reason
    assert len(reason) < 200


@pytest.mark.parametrize(
    ("item", "words"),
    [
        ("10.0.0.1%eth0", "zone index"),
        ("fe80::1%eth0", "zone index"),
        ("10.0.0.0/24", "CIDR"),
        ("2001:db8::/32", "CIDR"),
        ("10.0.0.1:443", "port"),
        ("[2001:db8::1]:443", "port"),
        ("[::1]", "bracket"),
        ("010.1.1.1", "leading zero"),
        ("127.1", "four dotted"),
        ("2130706433", "four dotted"),
        ("\uff11.\uff12.\uff13.\uff14", "non-ASCII"),
        ("1.2.3.4\x00", "control character"),
        ("example.com", "cannot hold"),
        ("A" * 10_000, "longer than 45"),
        ("", "empty"),
        ("2001:db8:::1", "not an IP address"),
    ],
    ids=lambda value: _case_id(value) if isinstance(value, str) and len(value) > 30 else None,
)
def test_invalid_reason_explains(item, words):
    assert words in parse_item(item).reason


@pytest.mark.parametrize(
    ("ips", "expected"),
    [
        ("1.1.1.1, 2.2.2.2\n3.3.3.3", ["1.1.1.1", "2.2.2.2", "3.3.3.3"]),
        ("1.1.1.1,2.2.2.2", ["1.1.1.1", "2.2.2.2"]),
        ("  1.1.1.1  ", ["1.1.1.1"]),
        ("1.1.1.1\t\t2001:db8::1\r\n", ["1.1.1.1", "2001:db8::1"]),
        ("1.1.1.1\u00a02.2.2.2", ["1.1.1.1", "2.2.2.2"]),
        ("junk,,1.1.1.1", ["junk", "1.1.1.1"]),
        (",,", []),
        ("", []),
        (" \n ", []),
        (["1.1.1.1", " 2.2.2.2 ", "", "a, b"], ["1.1.1.1", " 2.2.2.2 ", "", "a, b"]),
        ([], []),
    ],
)
def test_split_items(ips, expected):
    assert split_items(ips) == expected


def test_split_items_keeps_list_items_as_given():
    items = ["  8.8.8.8", "8.8.8.8,1.1.1.1"]
    result = split_items(items)
    assert result == items
    assert all(a is b for a, b in zip(result, items))


# -- the guarantee: nothing but a canonical IP ever leaves parse_item -------------------------

_SAFE = re.compile(r"[0-9a-f.:]+")
# Reasons depend on the kind of problem only, never on the item: the table reaches every
# branch, so a reason outside this set means a new branch (or an echo) the table lacks.
KNOWN_REASONS = {parse_item(case[0]).reason for case in CASES if case[1] != C}


def _check_guarantee(item: str) -> None:
    parsed = parse_item(item)
    assert parsed.input is item
    if parsed.status == "invalid":
        assert parsed.ip is None
        assert parsed.code == "invalid_ip"
        assert parsed.reason in KNOWN_REASONS
        return
    assert parsed.ip is not None
    assert _SAFE.fullmatch(parsed.ip)
    assert str(ipaddress.ip_address(parsed.ip)) == parsed.ip
    assert len(parsed.ip) <= MAX_IP_LENGTH
    if parsed.status == "skipped":
        assert parsed.code in {"loopback", "unspecified", "multicast", "link_local"}
        assert parsed.reason in KNOWN_REASONS
    else:
        assert parsed.code is None


_ip_like_alphabet = st.sampled_from(list("0123456789abcdefABCDEF.:%/[]x \t") + ["\uff11", "\u0661", "\x00"])


@settings(max_examples=500)
@given(st.text())
@example("fe80::1%eth0")
@example("\u0661.\u0662.\u0663.\u0664")
@example("::ffff:1.2.3.4")
def test_any_text_is_invalid_or_canonical(item):
    _check_guarantee(item)


@settings(max_examples=1000)
@given(st.text(alphabet=_ip_like_alphabet, max_size=48))
def test_ip_like_text_is_invalid_or_canonical(item):
    _check_guarantee(item)


@settings(max_examples=500)
@given(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)), st.booleans(), st.booleans())
def test_real_ips_are_never_invalid(address, exploded, upper):
    text = address.exploded if exploded else address.compressed
    if upper:
        text = text.upper()
    parsed = parse_item(f" {text}\n")
    assert parsed.status in {"callable", "skipped"}
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    assert parsed.ip == str(address)
