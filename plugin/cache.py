"""The result cache: answers of the Defender API kept for `connection.cache.ttl_seconds`, in the quota's backend.

Keyed by cloud + tenant + canonical IP + look-back hours, never by client id: the statistics
belong to the tenant, whichever app registration asks. Kept: `stats` (enriched and not seen),
`not_found` (a 404, also not seen) and `invalid` (the API's 400). Never kept: `deferred` and
`failed`, which say nothing about the IP, and hits themselves (re-storing a hit would stretch
its life past the TTL). A hit comes back with `cached=True` and its original `retrieved_at`.

Stores, chosen by `connection.quota.backend` (see `make_cache`): `memory` (this process, here),
`sqlite` (`cache.sqlite3` in the state dir, cache_stores.py) and `redis` (cache_stores.py).
A broken or unreachable store is a miss, never an error: the cache only ever saves calls.

Cheap to import on purpose (the cached path must start fast): no requests, msal, jsonschema
or plugin.config at import time, and redis only inside the redis store.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from plugin.errors import ConfigError
from plugin.ips import parse_item
from plugin.models import IpStats, LookupOutcome
from plugin.shared import shared

if TYPE_CHECKING:
    from plugin.config import Connection

STORABLE_KINDS = frozenset({"stats", "not_found", "invalid"})
PAYLOAD_VERSION = 1
MAX_MEMORY_ENTRIES = 100_000  # ~300 bytes each: the memory store stays below ~50 MB


class ResultCache(Protocol):
    """What the enrichment asks of a result cache."""

    def get(self, ip: str, look_back_hours: int) -> LookupOutcome | None:
        """The stored outcome (`cached=True`, original `retrieved_at`), or None on a miss."""

    def put(self, ip: str, look_back_hours: int, outcome: LookupOutcome) -> None:
        """Keep `outcome` for the TTL if its kind is storable; anything else is ignored."""

    def close(self) -> None: ...


class NullCache:
    """Caching switched off (`cache.enabled: false` or `ttl_seconds: 0`): every get misses, put keeps nothing."""

    backend = "none"

    def get(self, ip: str, look_back_hours: int) -> LookupOutcome | None:
        return None

    def put(self, ip: str, look_back_hours: int, outcome: LookupOutcome) -> None:
        return None

    def close(self) -> None:
        return None


def cache_scope(conn: Connection) -> str:
    """The part of every key that names whose statistics these are: cloud + tenant (lower-case)."""
    return f"{conn.endpoints.cloud}:{conn.tenant_id.strip().lower()}"


def entry_key(scope: str, ip: str, look_back_hours: int) -> str:
    """`{cloud}:{tenant}:{canonical ip}:{look-back hours}`."""
    return f"{scope}:{canonical_ip(ip)}:{int(look_back_hours)}"


def canonical_ip(ip: str) -> str:
    """The canonical form `plugin.ips` gives (callers pass canonical IPs; this makes sure)."""
    return parse_item(ip).ip or ip.strip().lower()


def encode(outcome: LookupOutcome) -> str | None:
    """The stored JSON of a storable outcome, or None for one that must not be stored."""
    if outcome.kind not in STORABLE_KINDS or outcome.cached or outcome.retrieved_at is None:
        return None
    stats = outcome.stats
    if outcome.kind == "stats" and stats is None:
        return None
    return json.dumps({
        "v": PAYLOAD_VERSION,
        "kind": outcome.kind,
        "prevalence": stats.prevalence if stats else None,
        "first_seen": _iso(stats.first_seen) if stats else None,
        "last_seen": _iso(stats.last_seen) if stats else None,
        "error_code": outcome.error_code,
        "message": outcome.message,
        "retrieved_at": _iso(outcome.retrieved_at),
    }, separators=(",", ":"))


def decode(payload: str | bytes | None, ip: str) -> LookupOutcome | None:
    """The outcome of a stored payload, marked cached; None (a miss) for anything corrupt or unknown."""
    if payload is None:
        return None
    try:
        doc = json.loads(payload)
        if not isinstance(doc, dict) or doc.get("v") != PAYLOAD_VERSION or doc.get("kind") not in STORABLE_KINDS:
            return None
        retrieved_at = _parse_time(doc["retrieved_at"])
        if retrieved_at is None:
            return None
        stats = None
        if doc["kind"] == "stats":
            prevalence = doc["prevalence"]
            if type(prevalence) is not int or prevalence < 0:
                return None
            stats = IpStats(ip=canonical_ip(ip), prevalence=prevalence,
                            first_seen=_parse_time(doc["first_seen"]), last_seen=_parse_time(doc["last_seen"]))
        error_code, message = doc.get("error_code"), doc.get("message")
        if not all(v is None or isinstance(v, str) for v in (error_code, message)):
            return None
        return LookupOutcome(doc["kind"], stats=stats, error_code=error_code, message=message,
                             retrieved_at=retrieved_at, cached=True)
    except (ValueError, TypeError, KeyError, OverflowError):
        return None


def _iso(moment: datetime | None) -> str | None:
    """ISO-8601, UTC, microseconds always written; a naive datetime is taken as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def _parse_time(text: object) -> datetime | None:
    """A stored time back to an aware UTC datetime; None stays None; a naive or non-string value is corrupt."""
    if text is None:
        return None
    if not isinstance(text, str):
        raise ValueError("time is not a string")
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("time without a zone")
    return moment.astimezone(timezone.utc)


class MemoryCache:
    """This process's cache: a bounded, thread-safe dict on an injectable (monotonic) clock.

    Entries sit in insertion order, which with one TTL is also expiry order: expired entries
    are dropped from the front on every put, and beyond `max_entries` the oldest go first,
    so memory stays flat however many IPs pass through.
    """

    backend = "memory"

    def __init__(self, scope: str, ttl_seconds: float, *, clock: Callable[[], float] = time.monotonic,
                 max_entries: int = MAX_MEMORY_ENTRIES):
        self._scope = scope
        self._ttl = ttl_seconds
        self._clock = clock
        self._max = max(1, max_entries)
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[float, str]] = OrderedDict()  # key -> (expires, payload)

    def get(self, ip: str, look_back_hours: int) -> LookupOutcome | None:
        key = entry_key(self._scope, ip, look_back_hours)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            expires, payload = entry
            if expires <= self._clock():
                del self._entries[key]
                return None
        return decode(payload, ip)

    def put(self, ip: str, look_back_hours: int, outcome: LookupOutcome) -> None:
        payload = encode(outcome)
        if payload is None or self._ttl <= 0:
            return
        key = entry_key(self._scope, ip, look_back_hours)
        with self._lock:
            now = self._clock()
            self._entries[key] = (now + self._ttl, payload)
            self._entries.move_to_end(key)
            while self._entries:
                _, (expires, _) = next(iter(self._entries.items()))
                if expires > now and len(self._entries) <= self._max:
                    break
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def close(self) -> None:
        with self._lock:
            self._entries.clear()


def make_cache(conn: Connection, *, clock: Callable[[], float] | None = None) -> ResultCache:
    """The result cache of `conn`, in the store of `conn.quota.backend`.

    `clock` (tests) replaces the store's clock: monotonic seconds for memory, wall-clock
    seconds for sqlite (its rows are read by other processes). Redis expires keys on the
    server (`SET ... EX`), so it refuses one, as the quota does.
    """
    settings = conn.cache
    if not settings.enabled or settings.ttl_seconds <= 0:
        return NullCache()
    scope, ttl, backend = cache_scope(conn), settings.ttl_seconds, conn.quota.backend
    if backend == "memory":
        return MemoryCache(scope, ttl, clock=clock or time.monotonic)
    if backend == "sqlite":
        from plugin.cache_stores import SQLiteCache

        return SQLiteCache(Path(conn.state_dir) / "cache.sqlite3", scope, ttl, clock=clock or time.time)
    if backend == "redis":
        if clock is not None:
            raise ValueError("the redis cache expires keys on the Redis server; it takes no clock")
        if not conn.quota.redis_url:
            raise ConfigError("connection.quota.redis_url: required for the redis backend")
        from plugin.cache_stores import RedisCache

        return RedisCache(conn.quota.redis_url, scope, ttl)
    raise ConfigError("connection.quota.backend: must be memory, sqlite or redis")


def shared_cache(conn: Connection) -> ResultCache:
    """The process-wide cache for this connection's tenant and settings (the memory store lives as long as the process)."""
    key = ("cache", conn.quota.backend, conn.quota.redis_url, conn.state_dir, cache_scope(conn), conn.cache)
    return shared(key, lambda: make_cache(conn))
