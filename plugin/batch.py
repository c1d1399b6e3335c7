"""The scheduled-triage job: IPs from a file, one final NDJSON record per IP line, resumable.

A record is appended only once it is final (enriched, not_seen, skipped, invalid, failed),
in one write of a whole line, so a killed run leaves at most a torn last line, which the next
run cuts off. A rerun skips the lines the output already holds; answers come from the result
cache, so no answered IP is asked again. Lines still waiting for quota when the run stops
(--max-runtime, SIGTERM, SIGINT) get no record and are left for the next run.
"""

from __future__ import annotations

import json
import os
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

from plugin.cache import shared_cache
from plugin.config import Connection
from plugin.defender import DefenderClient
from plugin.ips import ParsedItem, parse_item
from plugin.mapping import MappingOptions, build_record
from plugin.models import LookupOutcome, Meter
from plugin.quota import shared_quota
from plugin.session import CallDeferred, DefenderSession

CONCURRENCY = 4
FSYNC_EVERY_SECONDS = 1.0  # bounds what a power loss can take back; a kill takes nothing written
FINAL = ("enriched", "not_seen", "skipped", "invalid", "failed")


@dataclass
class BatchResult:
    """What one run did: records written by status, calls, cache hits and lines left for a rerun."""

    written: dict[str, int] = field(default_factory=lambda: {status: 0 for status in FINAL})
    already_done: int = 0
    remaining: int = 0
    api_calls: int = 0
    cache_hits: int = 0
    seconds: float = 0.0
    stopped: str | None = None  # why the run ended early: "max-runtime" or a signal name

    @property
    def complete(self) -> bool:
        """True when every IP line of the input has its record."""
        return self.remaining == 0


class StopFlag:
    """Set by a signal or the runtime budget; makes every quota or backoff wait give up at once."""

    def __init__(self):
        self._event = threading.Event()
        self.reason: str | None = None

    def set(self, reason: str) -> None:
        """Ask the run to stop: in-flight requests finish, nothing new starts."""
        self.reason = self.reason or reason
        self._event.set()

    def is_set(self) -> bool:
        """True once a stop was asked for."""
        return self._event.is_set()

    def sleep(self, seconds: float) -> None:
        """Sleep, unless a stop comes first: then the waiting lookup ends as deferred (no record)."""
        if self._event.wait(seconds):
            raise CallDeferred("stopped", 0.0)


def ip_lines(stream: TextIO) -> Iterator[tuple[int, str]]:
    """(line number, item) for every IP line; blank and `#` lines count but give nothing."""
    for number, raw in enumerate(stream, start=1):
        item = raw.rstrip("\r\n")
        if item.strip() and not item.lstrip().startswith("#"):
            yield number, item


def recover_output(path: Path) -> set[int]:
    """Line numbers the output already holds, after cutting off a torn last line left by a kill."""
    done: set[int] = set()
    if not path.exists():
        return done
    good_end = 0
    with path.open("rb") as handle:
        for raw in handle:
            try:
                if not raw.endswith(b"\n"):
                    raise ValueError("torn")
                done.add(int(json.loads(raw)["line"]))
            except (ValueError, KeyError, TypeError):
                break  # a torn or foreign line: it and everything after it are redone
            good_end += len(raw)
    if good_end != path.stat().st_size:
        os.truncate(path, good_end)
    return done


class RecordWriter:
    """Appends whole NDJSON lines, one write each, and fsyncs at most once a second."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.monotonic):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._clock = clock
        self._synced_at = clock()

    def write(self, record: dict) -> None:
        """Append one record as one line."""
        os.write(self._fd, (json.dumps(record, separators=(",", ":")) + "\n").encode())
        if self._clock() - self._synced_at >= FSYNC_EVERY_SECONDS:
            self.sync()

    def sync(self) -> None:
        """Flush to disk."""
        os.fsync(self._fd)
        self._synced_at = self._clock()

    def close(self) -> None:
        """Flush and close."""
        self.sync()
        os.close(self._fd)


class Batch:
    """One run of the job over an input stream, into an output file."""

    def __init__(self, conn: Connection, output: Path, *, look_back_hours: int = 720, priority: str = "scheduled",
                 max_runtime: float | None = None, stop: StopFlag | None = None,
                 progress: Callable[[BatchResult], None] | None = None, session: DefenderSession | None = None):
        self.conn = conn
        self.output = output
        self.priority = priority
        self.stop = stop or StopFlag()
        self.progress = progress or (lambda result: None)
        self.options = MappingOptions(look_back_hours=look_back_hours, portal_base=conn.endpoints.portal_url)
        self.session = session or DefenderSession(conn, quota=shared_quota(conn), sleep=self.stop.sleep)
        self.client = DefenderClient(self.session)
        self.cache = shared_cache(conn)
        self.meter = Meter()
        self.max_runtime = max_runtime
        self.result = BatchResult()
        self._waiting: dict[str, list[tuple[int, ParsedItem]]] = {}  # ip in flight -> lines wanting it

    def run(self, lines: Iterable[tuple[int, str]]) -> BatchResult:
        """Process every line not yet in the output; returns what this run did."""
        started = self.session.clock()
        deadline = started + self.max_runtime if self.max_runtime is not None else float("inf")
        if self.max_runtime is not None:
            timer = threading.Timer(self.max_runtime, self.stop.set, args=("max-runtime",))
            timer.daemon = True
            timer.start()
        done = recover_output(self.output)
        writer = RecordWriter(self.output)
        pending: dict[Future, str] = {}
        try:
            with ThreadPoolExecutor(max_workers=CONCURRENCY, thread_name_prefix="batch") as pool:
                for number, item in lines:
                    if number in done:
                        self.result.already_done += 1
                        continue
                    if self.stop.is_set():
                        self.result.remaining += 1
                        continue
                    self._start_line(number, parse_item(item), writer, pool, pending, deadline)
                    while len(pending) >= CONCURRENCY * 2:  # bounded: memory stays flat on any input size
                        self._collect(pending, writer)
                while pending:
                    self._collect(pending, writer)
        finally:
            writer.close()
            if self.max_runtime is not None:
                timer.cancel()
        self.result.api_calls = self.meter.api_calls
        self.result.cache_hits = self.meter.cache_hits
        self.result.seconds = self.session.clock() - started
        self.result.stopped = self.stop.reason
        return self.result

    def _start_line(self, number: int, item: ParsedItem, writer: RecordWriter, pool: ThreadPoolExecutor,
                    pending: dict[Future, str], deadline: float) -> None:
        """Write the record now if it needs no call (skipped, invalid, cached), else join or start a lookup."""
        if item.status != "callable":
            self._write(writer, number, item, None)
            return
        if item.ip in self._waiting:  # the same IP is already being looked up: one call serves both
            self._waiting[item.ip].append((number, item))
            return
        cached = self.cache.get(item.ip, self.options.look_back_hours)
        if cached is not None:
            self.meter.count_hit()
            self._write(writer, number, item, cached)
            return
        self._waiting[item.ip] = [(number, item)]
        future = pool.submit(self.client.ip_stats, item.ip, look_back_hours=self.options.look_back_hours,
                             lane=self.priority, deadline=deadline, meter=self.meter)
        pending[future] = item.ip

    def _collect(self, pending: dict[Future, str], writer: RecordWriter) -> None:
        """Wait for a lookup to finish and write the records it answers; deferred ones stay without a record."""
        finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
        for future in finished:
            ip = pending.pop(future)
            outcome = future.result()
            lines = self._waiting.pop(ip)
            if outcome.kind == "deferred":
                self.result.remaining += len(lines)
                continue
            self.cache.put(ip, self.options.look_back_hours, outcome)
            for number, item in lines:
                self._write(writer, number, item, outcome)
        self.progress(self.result)

    def _write(self, writer: RecordWriter, number: int, item: ParsedItem, outcome: LookupOutcome | None) -> None:
        record = build_record(item, outcome, self.options)
        writer.write({"line": number, **record})
        self.result.written[record["status"]] += 1
