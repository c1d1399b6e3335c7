"""One SQLite file shared by processes: a connection per process, reopened after a fork, owner-only."""

from __future__ import annotations

import os
import sqlite3
import stat
from pathlib import Path


class SQLiteFile:
    """The connection to one store file; callers hold their own lock while they use it.

    The file is created 0600 (and its folder 0700) before SQLite opens it, since SQLite's
    -wal and -shm files copy its mode and the stores reveal what was looked up. WAL mode keeps
    readers from blocking the writer.
    """

    def __init__(self, path: str | os.PathLike, *, schema: str, busy_timeout: float, synchronous: str = "FULL"):
        self.path = Path(path)
        self._schema = schema
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._db: sqlite3.Connection | None = None
        self._pid = 0

    def connection(self) -> sqlite3.Connection:
        """This process's connection, opened (schema included) on first use."""
        # A connection must not cross a fork: a child opens its own (the parent's stays the parent's).
        if self._db is None or self._pid != os.getpid():
            self._prepare_file()
            db = sqlite3.connect(self.path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self._synchronous}")
                db.executescript(self._schema)
            except BaseException:
                db.close()
                raise
            self._db, self._pid = db, os.getpid()
        return self._db

    @property
    def opened_in_this_process(self) -> bool:
        """False until the first connection() of this process (a fork counts as a new one)."""
        return self._db is not None and self._pid == os.getpid()

    def close(self) -> None:
        """Close this process's connection, if it opened one."""
        if self.opened_in_this_process:
            self._db.close()
        self._db = None

    def _prepare_file(self) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
                os.fchmod(fd, 0o600)  # an older, wider file: tighten it
        finally:
            os.close(fd)
