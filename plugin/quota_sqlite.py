"""The budget of every process on one host: a sliding log of send times in SQLite, in the state dir.

Why not pyrate-limiter's SQLiteBucket (4.6.0, evaluated for issue 3): on a refusal it reports
the wait of the *first* full window only (10/1 s + 15/5 s, both full: it says 0.9 s, the true
wait is 3.8 s, and the retry after 0.9 s is refused again), its rate-list check rejects real
limit sets (10/1 s with 16/1.5 s, or 10/1 s with 10/60 s), it has no 429 pause, and it needs
`filelock` plus a second lock file. What remains is a count and an insert: done here in one
`BEGIN IMMEDIATE` transaction, which SQLite already serialises across processes.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from typing import Callable, Iterator

from plugin.config import QuotaSettings
from plugin.errors import ConfigError
from plugin.quota import describe
from plugin.sqlite_file import SQLiteFile

SCHEMA = """
CREATE TABLE IF NOT EXISTS quota_sends (budget TEXT NOT NULL, t REAL NOT NULL, permit TEXT);
CREATE INDEX IF NOT EXISTS quota_sends_by_budget ON quota_sends (budget, t);
CREATE INDEX IF NOT EXISTS quota_sends_by_permit ON quota_sends (permit);
CREATE TABLE IF NOT EXISTS quota_cooldown (budget TEXT PRIMARY KEY, until REAL NOT NULL);
"""


class SQLiteQuota:
    """Exact sliding windows shared by every process that opens the same file with the same budget key.

    `clock` must be wall-clock seconds (default time.time): the log outlives the process and
    is read by others, and monotonic time means nothing outside the process that read it.
    """

    backend = "sqlite"

    def __init__(self, settings: QuotaSettings, path: str | os.PathLike, budget_key: str, *,
                 clock: Callable[[], float] = time.time, busy_timeout: float = 30.0):
        self._settings = settings
        self._file = SQLiteFile(path, schema=SCHEMA, busy_timeout=busy_timeout)
        self._key = budget_key
        self._clock = clock
        self._longest = max(w.per_seconds for w in settings.limits)
        self._lock = threading.Lock()  # one sqlite3 connection, used by one thread at a time
        self.last_permit_at: float | None = None  # clock reading of the last permit taken here (diagnostics, tests)
        try:  # open and create the schema now, so a bad state dir fails at once, named
            with self._transaction("DEFERRED"):
                pass
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"connection.state_dir: cannot open the quota store there ({type(exc).__name__})") from None

    def try_acquire(self, lane: str, permit: str | None = None) -> float:
        """Take one permit now and return 0, or take nothing and return the seconds to wait."""
        with self._transaction("IMMEDIATE") as db:
            # Read the clock inside the write lock: stamps then increase in commit order, so no
            # process can insert a send "in the past" that another already counted past.
            now = self._clock()
            cooldown, measured = self._measure(db, lane, now)
            wait = max(cooldown, *(w for _, w in measured))
            if wait > 0:
                return wait
            db.execute("DELETE FROM quota_sends WHERE budget = ? AND t <= ?", (self._key, now - self._longest))
            db.execute("INSERT INTO quota_sends (budget, t, permit) VALUES (?, ?, ?)", (self._key, now, permit))
            self.last_permit_at = now
            return 0.0

    def settle(self, permit: str) -> None:
        """Restamp a taken permit with the current time, once its request is answered or abandoned."""
        with self._transaction("IMMEDIATE") as db:
            db.execute("UPDATE quota_sends SET t = max(t, ?), permit = NULL WHERE budget = ? AND permit = ?",
                       (self._clock(), self._key, permit))

    def pause(self, seconds: float) -> None:
        """Stop every caller of this budget, in any process, for `seconds`; never shortens a longer pause."""
        with self._transaction("IMMEDIATE") as db:
            db.execute(
                "INSERT INTO quota_cooldown (budget, until) VALUES (?, ?) "
                "ON CONFLICT (budget) DO UPDATE SET until = max(until, excluded.until)",
                (self._key, self._clock() + seconds),
            )

    def state(self, lane: str) -> dict:
        """Used/left per window for the lane, and any cooldown, for the envelope."""
        with self._transaction("DEFERRED") as db:  # a read snapshot: counts and waits agree
            now = self._clock()
            cooldown, measured = self._measure(db, lane, now)
        return describe(self.backend, self._settings, lane, cooldown, measured)

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def _measure(self, db: sqlite3.Connection, lane: str, now: float) -> tuple[float, list[tuple[int, float]]]:
        """The cooldown left, and per window: sends of the whole budget in it and the lane's wait."""
        row = db.execute("SELECT until FROM quota_cooldown WHERE budget = ?", (self._key,)).fetchone()
        cooldown = max(0.0, row[0] - now) if row else 0.0
        measured = []
        for window in self._settings.limits:
            since = now - window.per_seconds  # a window is (now - per, now], as in MemoryQuota
            (used,) = db.execute("SELECT COUNT(*) FROM quota_sends WHERE budget = ? AND t > ?",
                                 (self._key, since)).fetchone()
            cap = self._settings.cap(window, lane)
            wait = 0.0
            if used >= cap:
                # The send whose leaving makes room for one more: the (used - cap + 1)-th oldest.
                (oldest,) = db.execute(
                    "SELECT t FROM quota_sends WHERE budget = ? AND t > ? ORDER BY t LIMIT 1 OFFSET ?",
                    (self._key, since, used - cap),
                ).fetchone()
                wait = oldest + window.per_seconds - now
            measured.append((used, wait))
        return cooldown, measured

    @contextmanager
    def _transaction(self, mode: str) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes SQLite's write lock up front (waiting up to the busy timeout), so the
        count and the insert of one permit are atomic against every other process and thread."""
        with self._lock:
            db = self._file.connection()
            db.execute(f"BEGIN {mode}")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
