"""The shared result-cache stores: SQLite in the state dir (every process on one host) and Redis (every host).

Both degrade instead of failing: a store that cannot be opened or reached answers every get
with a miss and drops every put, logging one warning per outage (then debug lines until it
works again). The Redis warning never holds the URL, which may carry a password.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from typing import Callable

from plugin.cache import decode, encode, entry_key
from plugin.errors import ConfigError
from plugin.models import LookupOutcome
from plugin.sqlite_file import SQLiteFile

log = logging.getLogger(__name__)

SCHEMA = "CREATE TABLE IF NOT EXISTS result_cache (key TEXT PRIMARY KEY, expires REAL NOT NULL, payload TEXT NOT NULL)"
PURGE_EVERY = 500  # puts between two purges of expired rows (and the first put of each process)


class _Outage:
    """One warning when a store starts failing, debug lines while it keeps failing, a note when it is back."""

    def __init__(self, name: str):
        self._name = name
        self._down = False

    def failed(self, action: str, reason: str) -> None:
        if not self._down:
            self._down = True
            log.warning("result cache (%s) unavailable, continuing without it: %s failed (%s)", self._name, action, reason)
        else:
            log.debug("result cache (%s) still unavailable: %s failed (%s)", self._name, action, reason)

    def ok(self) -> None:
        if self._down:
            self._down = False
            log.info("result cache (%s) available again", self._name)


class SQLiteCache:
    """Rows `(key, expires, payload)` in `cache.sqlite3`, a file of its own so cache writes never contend with permits.

    `clock` must be wall-clock seconds (default time.time): rows are read by other processes.
    The file (and the folder, when created here) are owner-only: they reveal what was looked up.
    """

    backend = "sqlite"

    def __init__(self, path: str | os.PathLike, scope: str, ttl_seconds: float, *,
                 clock: Callable[[], float] = time.time, busy_timeout: float = 5.0, purge_every: int = PURGE_EVERY):
        # synchronous=NORMAL: WAL stays consistent; a lost last put only costs a call.
        self._file = SQLiteFile(path, schema=SCHEMA, busy_timeout=busy_timeout, synchronous="NORMAL")
        self.path = self._file.path
        self._scope = scope
        self._ttl = ttl_seconds
        self._clock = clock
        self._purge_every = max(1, purge_every)
        self._lock = threading.Lock()  # one sqlite3 connection, used by one thread at a time
        self._puts = 0
        self._outage = _Outage("sqlite")
        try:  # open now (file, schema); a state dir that fails here makes a cache that only misses
            with self._lock:
                self._connection()
        except (sqlite3.Error, OSError) as exc:
            self._outage.failed("open", f"{type(exc).__name__}: {exc}")

    def get(self, ip: str, look_back_hours: int) -> LookupOutcome | None:
        key = entry_key(self._scope, ip, look_back_hours)
        try:
            with self._lock:
                row = self._connection().execute(
                    "SELECT payload FROM result_cache WHERE key = ? AND expires > ?", (key, self._clock())).fetchone()
        except (sqlite3.Error, OSError) as exc:
            self._outage.failed("get", f"{type(exc).__name__}: {exc}")
            return None
        self._outage.ok()
        return decode(row[0], ip) if row else None

    def put(self, ip: str, look_back_hours: int, outcome: LookupOutcome) -> None:
        payload = encode(outcome)
        if payload is None or self._ttl <= 0:
            return
        key = entry_key(self._scope, ip, look_back_hours)
        try:
            with self._lock:
                db = self._connection()
                now = self._clock()
                db.execute("INSERT OR REPLACE INTO result_cache (key, expires, payload) VALUES (?, ?, ?)",
                           (key, now + self._ttl, payload))
                if self._puts % self._purge_every == 0:
                    db.execute("DELETE FROM result_cache WHERE expires <= ?", (now,))
                self._puts += 1
        except (sqlite3.Error, OSError) as exc:
            self._outage.failed("put", f"{type(exc).__name__}: {exc}")
            return
        self._outage.ok()

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _connection(self) -> sqlite3.Connection:
        if not self._file.opened_in_this_process:
            self._puts = 0  # so the first put of each process purges expired rows
        return self._file.connection()


class RedisCache:
    """`SET key payload EX ttl` on the quota's Redis; the server expires entries, so every host sees one TTL.

    After a failure the store is skipped for `retry_after` seconds, so a batch facing a dead
    Redis does not pay a connect timeout per IP.
    """

    backend = "redis"

    def __init__(self, url: str, scope: str, ttl_seconds: int, *, client=None, retry_after: float = 5.0,
                 socket_timeout: float = 2.0, clock: Callable[[], float] = time.monotonic):
        import redis  # only here: the memory and sqlite paths never pay for it

        self._errors = (redis.exceptions.RedisError, OSError)
        try:
            self._redis = client or redis.Redis.from_url(url, socket_timeout=socket_timeout,
                                                         socket_connect_timeout=socket_timeout)
        except ValueError:
            raise ConfigError("connection.quota.redis_url: not a valid Redis URL") from None  # never echo it
        self._scope = scope
        self._ttl = max(0, int(ttl_seconds))
        self._retry_after = retry_after
        self._clock = clock
        self._skip_until = 0.0
        self._outage = _Outage("redis")

    def key(self, ip: str, look_back_hours: int) -> str:
        """`defender-ip:cache:{cloud}:{tenant}:{ip}:{look-back hours}`."""
        return f"defender-ip:cache:{entry_key(self._scope, ip, look_back_hours)}"

    def get(self, ip: str, look_back_hours: int) -> LookupOutcome | None:
        if self._skipping():
            return None
        try:
            payload = self._redis.get(self.key(ip, look_back_hours))
        except self._errors as exc:
            self._failed("get", exc)
            return None
        self._outage.ok()
        return decode(payload, ip)

    def put(self, ip: str, look_back_hours: int, outcome: LookupOutcome) -> None:
        payload = encode(outcome)
        if payload is None or self._ttl <= 0 or self._skipping():
            return
        try:
            self._redis.set(self.key(ip, look_back_hours), payload, ex=self._ttl)
        except self._errors as exc:
            self._failed("put", exc)
            return
        self._outage.ok()

    def close(self) -> None:
        try:
            self._redis.close()
        except self._errors:
            pass

    def _skipping(self) -> bool:
        return self._clock() < self._skip_until

    def _failed(self, action: str, exc: BaseException) -> None:
        # The exception's text may name the host and port; only its type is logged, never the URL.
        self._skip_until = self._clock() + self._retry_after
        self._outage.failed(action, type(exc).__name__)
