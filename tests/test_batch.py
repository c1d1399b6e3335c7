"""The batch job as cron runs it: a real process, a real emulator, kills and reruns."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_cli import command

from plugin.batch import recover_output
from plugin.emulator import Emulator

INPUT = """10.209.67.177

# a comment line: counted, no record
127.0.0.1
not-an-ip
8.8.8.8
10.209.67.177
 ::ffff:8.8.8.8
192.0.2.1
"""
IP_LINES = [1, 4, 5, 6, 7, 8, 9]


def connection_file(emu: Emulator, tmp_path: Path, **quota) -> Path:
    path = tmp_path / "connection.json"
    path.write_text(json.dumps(emu.connection(state_dir=str(tmp_path / "state"),
                                              quota={"backend": "sqlite", **quota})))
    return path


def batch(tmp_path: Path, connection: Path, *extra: str, input_text: str = INPUT, wait: bool = True):
    source = tmp_path / "ips.txt"
    source.write_text(input_text)
    cmd = [*command(), "batch", str(source), "--output", str(tmp_path / "out.ndjson"), "--connection", str(connection), *extra]
    if not wait:
        return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def records(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "out.ndjson").read_text().splitlines()]


def test_every_ip_line_gets_one_record_and_each_unique_ip_one_call(tmp_path):
    with Emulator() as emu:
        result = batch(tmp_path, connection_file(emu, tmp_path))
        assert result.returncode == 0, result.stderr
        by_line = {r["line"]: r for r in records(tmp_path)}
        assert sorted(by_line) == IP_LINES
        assert [by_line[n]["status"] for n in IP_LINES] == [
            "enriched", "skipped", "invalid", "enriched", "enriched", "enriched", "not_seen"]
        assert by_line[8]["input"] == " ::ffff:8.8.8.8" and by_line[8]["observable"]["value"] == "8.8.8.8"
        assert len(emu.stats_calls()) == 3  # 10.209.67.177, 8.8.8.8, 192.0.2.1
        assert "every IP line has its record" in result.stdout


def test_a_rerun_over_answered_lines_writes_nothing_and_calls_nothing(tmp_path):
    with Emulator() as emu:
        connection = connection_file(emu, tmp_path)
        assert batch(tmp_path, connection).returncode == 0
        before = (tmp_path / "out.ndjson").read_bytes()
        again = batch(tmp_path, connection)
        assert again.returncode == 0
        assert (tmp_path / "out.ndjson").read_bytes() == before
        assert len(emu.stats_calls()) == 3


def test_answered_ips_in_a_new_input_come_from_the_cache_within_the_ttl(tmp_path):
    with Emulator() as emu:
        connection = connection_file(emu, tmp_path)
        assert batch(tmp_path, connection).returncode == 0
        (tmp_path / "out.ndjson").unlink()
        second = batch(tmp_path, connection, input_text="8.8.8.8\n192.0.2.1\n10.209.67.177\n")
        assert second.returncode == 0
        assert len(emu.stats_calls()) == 3  # none new
        assert all(r["cached"] for r in records(tmp_path))
        assert "cache hits: 3" in second.stdout


def test_a_torn_last_line_is_cut_and_its_line_redone(tmp_path):
    with Emulator() as emu:
        connection = connection_file(emu, tmp_path)
        assert batch(tmp_path, connection).returncode == 0
        out = tmp_path / "out.ndjson"
        lines = out.read_bytes().splitlines(keepends=True)
        out.write_bytes(b"".join(lines[:-1]) + lines[-1][:40])  # a kill in the middle of a write
        assert batch(tmp_path, connection).returncode == 0
        assert sorted(r["line"] for r in records(tmp_path)) == IP_LINES
        assert len(emu.stats_calls()) == 3


def test_recover_output_keeps_whole_lines_only(tmp_path):
    out = tmp_path / "out.ndjson"
    out.write_bytes(b'{"line": 1}\n{"line": 3}\n{"line": 4, "sta')
    assert recover_output(out) == {1, 3}
    assert out.read_bytes() == b'{"line": 1}\n{"line": 3}\n'
    assert recover_output(tmp_path / "missing.ndjson") == set()


def test_max_runtime_stops_cleanly_with_75_and_a_rerun_finishes(tmp_path):
    ips = "".join(f"100.64.0.{i}\n" for i in range(1, 31))
    small = [{"calls": 10, "per_seconds": 1}, {"calls": 20, "per_seconds": 60}]
    with Emulator(limits=[(10, 1), (20, 60)]) as emu:
        first = batch(tmp_path, connection_file(emu, tmp_path, limits=small), "--max-runtime", "1.5", input_text=ips)
        assert first.returncode == 75, first.stderr
        written = len(records(tmp_path))
        assert 1 <= written <= 15  # the scheduled lane's cap of the 60 s window: floor(19 x 0.8)
        assert f"lines left for a rerun: {30 - written}" in first.stdout
        emu.set_limits([(1000, 1)])
        second = batch(tmp_path, connection_file(emu, tmp_path, limits=[{"calls": 1000, "per_seconds": 1}]), input_text=ips)
        assert second.returncode == 0, second.stderr
    assert sorted(r["line"] for r in records(tmp_path)) == list(range(1, 31))
    assert len(emu.stats_calls()) == 30 and emu.count(status=429) == 0


def slow_emulator_batch(emu: Emulator, tmp_path: Path, n: int):
    """A batch over n IPs that takes a few seconds: the service answers in 50 ms."""
    from plugin.emulator import Answer

    ips = [f"100.65.{i // 250}.{i % 250 + 1}" for i in range(n)]
    for ip in ips:
        emu.script(ip, [Answer(status=200, delay=0.05)])
    connection = connection_file(emu, tmp_path)
    return ips, connection


@pytest.mark.parametrize("kill_signal", [signal.SIGKILL, signal.SIGTERM])
def test_a_killed_batch_resumed_has_one_record_per_line_and_repeats_at_most_the_calls_in_flight(tmp_path, kill_signal):
    with Emulator() as emu:
        ips, connection = slow_emulator_batch(emu, tmp_path, 120)
        text = "".join(ip + "\n" for ip in ips)
        kills = 0
        for wait_for in (15, 50, 90):
            proc = batch(tmp_path, connection, input_text=text, wait=False)
            deadline = time.monotonic() + 60
            while len(emu.stats_calls()) < wait_for and proc.poll() is None:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            proc.send_signal(kill_signal)
            out, err = proc.communicate(timeout=60)
            kills += 1
            if kill_signal == signal.SIGTERM:
                assert proc.returncode == 75 and "finishing the requests in flight" in err
        final = batch(tmp_path, connection, input_text=text)
        assert final.returncode == 0, final.stderr
    lines = [r["line"] for r in records(tmp_path)]
    assert sorted(lines) == list(range(1, 121))  # none lost, none twice
    extra = len(emu.stats_calls()) - 120
    assert 0 <= extra <= 4 * kills  # a kill repeats at most the calls in flight (4 workers)
    if kill_signal == signal.SIGTERM:
        assert extra == 0  # a clean stop lets the calls in flight finish and records them
