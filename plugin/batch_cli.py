"""`defender-ip batch`: runs the batch job with signals, progress and a summary."""

from __future__ import annotations

import contextlib
import signal
import sys
import time
from pathlib import Path

from plugin.batch import Batch, BatchResult, StopFlag, ip_lines
from plugin.config import QuotaSettings, load_connection
from plugin.errors import InputError, PluginError

EXIT_OK = 0
EXIT_INPUT = 2
EXIT_LINES_REMAIN = 75  # EX_TEMPFAIL: run the same command again to continue
QUIET_PROGRESS_SECONDS = 10.0


def run(args) -> int:
    """Run the batch command; returns its exit code."""
    from plugin.cli import connection_document, exit_code_for  # the same sources and codes as every command

    if not 1 <= args.look_back_hours <= 720:
        print("error: input_invalid: --look-back-hours: must be 1-720", file=sys.stderr)
        return EXIT_INPUT
    stop = StopFlag()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda number, frame: _stopping(stop, signal.Signals(number).name))
    try:
        with connection_document(args) as document, _open_input(args.input) as stream:
            conn = load_connection(document)
            progress = Progress(_count_lines(args.input), conn.quota, args.priority)
            batch = Batch(conn, Path(args.output), look_back_hours=args.look_back_hours, priority=args.priority,
                          max_runtime=args.max_runtime, stop=stop, progress=progress.update)
            result = batch.run(ip_lines(stream))
            progress.close()
    except PluginError as error:
        print(f"error: {error.code}: {error.message}", file=sys.stderr)
        return exit_code_for(error)
    print(summary(result, args.output))
    return EXIT_OK if result.complete else EXIT_LINES_REMAIN


def summary(result: BatchResult, output: str) -> str:
    """The end-of-run report: counts by status, calls, cache hits, lines left, time."""
    counts = ", ".join(f"{status} {count}" for status, count in result.written.items())
    lines = [
        f"records written to {output}: {sum(result.written.values())} ({counts})",
        f"already in the output from earlier runs: {result.already_done}",
        f"API calls: {result.api_calls}, cache hits: {result.cache_hits}, time: {result.seconds:.1f} s",
    ]
    if result.complete:
        lines.append("every IP line has its record")
    else:
        why = f" (stopped: {result.stopped})" if result.stopped else ""
        lines.append(f"lines left for a rerun: {result.remaining}{why}; run the same command again to continue")
    return "\n".join(lines)


def _stopping(stop: StopFlag, name: str) -> None:
    if not stop.is_set():
        print(f"\n{name}: finishing the requests in flight, then stopping; rerun to continue", file=sys.stderr)
    stop.set(name)


class Progress:
    """A tqdm bar on a terminal; otherwise a quiet line every few seconds (logs, cron mail).

    The ETA is the quota's, not the recent pace's: after the first burst every call waits for
    the lane's share of the tightest window, so lines left x calls per line / lane rate.
    """

    def __init__(self, total: int | None, quota: QuotaSettings, lane: str):
        self._bar = None
        self._last = time.monotonic()
        self._total = total
        self._calls_per_second = min(quota.cap(w, lane) / w.per_seconds for w in quota.limits)
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="line", file=sys.stderr)

    def update(self, result: BatchResult) -> None:
        """Show how far the run is."""
        handled = sum(result.written.values()) + result.already_done + result.remaining
        eta = self._eta(result, handled)
        if self._bar is not None:
            self._bar.update(handled - self._bar.n)
            self._bar.set_postfix(calls=result.api_calls, cached=result.cache_hits, quota_eta=eta, refresh=False)
        elif time.monotonic() - self._last >= QUIET_PROGRESS_SECONDS:
            self._last = time.monotonic()
            of = f"/{self._total}" if self._total else ""
            print(f"progress: {handled}{of} lines, {result.api_calls} API calls, {result.cache_hits} cache hits, "
                  f"ETA {eta}", file=sys.stderr, flush=True)

    def _eta(self, result: BatchResult, handled: int) -> str:
        """Time the quota needs for the lines left, at this run's calls per line so far."""
        if not self._total or not handled:
            return "unknown"
        seconds = (self._total - handled) * (result.api_calls / handled) / self._calls_per_second
        return time.strftime("%H:%M:%S", time.gmtime(seconds))

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@contextlib.contextmanager
def _open_input(source: str):
    """The input stream: a file, or stdin for '-'; an unreadable file is input_invalid."""
    if source == "-":
        yield sys.stdin
        return
    try:
        handle = open(source, encoding="utf-8", errors="replace")
    except OSError as exc:
        raise InputError(f"INPUT: cannot read the file ({type(exc).__name__})") from None
    with handle:
        yield handle


def _count_lines(source: str) -> int | None:
    """Lines in the input file, for the progress total (unknown for stdin)."""
    if source == "-":
        return None
    try:
        with open(source, "rb") as handle:
            return sum(1 for _ in handle)
    except OSError:
        return None
