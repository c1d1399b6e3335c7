"""The shared quota under real processes, against the emulator with scaled-down limits.

Four measurements, each printed as a ratio or count (no absolute timing goals):
  1. sqlite: N processes on one host (one state dir) share 200 IPs: 429s seen by the
     emulator, the peak calls in any sliding window as a share of the cap, and the
     throughput achieved as a share of an ideal exact limiter's (same caps, same calls).
  2. redis: 2 groups of 3 processes with separate state dirs ("two hosts") sharing one
     Redis: the same figures.
  3. analyst vs scheduled: scheduled jobs saturate their lane; an analyst call's wait from
     its start to its request reaching the emulator.
  4. one forced 429 with Retry-After: 3: requests from any process during the cooldown.

    python benchmarks/quota_processes.py [--ips 200] [--processes 8]

Needs the package installed (`pip install .`) and, for the Redis part, `redis-server`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import installed_tool
from plugin.emulator import Answer, Emulator
from plugin.host import run_action

LIMITS = [{"calls": 10, "per_seconds": 1}, {"calls": 30, "per_seconds": 5}]
SHARE = 0.95


def caps(share: float = SHARE) -> list[tuple[int, float]]:
    return [(max(1, int(w["calls"] * share)), float(w["per_seconds"])) for w in LIMITS]


def ideal_duration(n: int) -> float:
    """Time an exact limiter needs to admit n calls that all arrive at t=0 (greedy, event-driven)."""
    times: list[float] = []
    t = 0.0
    for _ in range(n):
        while True:
            waits = [times[len(times) - cap] + per - t for cap, per in caps()
                     if len([x for x in times if x > t - per]) >= cap]
            if not waits:
                break
            t += max(max(waits), 1e-9)
        times.append(t)
    return times[-1] - times[0]


def peak_ratio(arrivals: list[float]) -> list[float]:
    """For each window: the most calls seen in any sliding span of it, over its cap."""
    arrivals = sorted(arrivals)
    ratios = []
    for cap, per in caps():
        peak = max(sum(1 for x in arrivals if t - per < x <= t) for t in arrivals)
        ratios.append(peak / cap)
    return ratios


def worker(tool: str, connection: Path, ips: list[str], priority: str, state_dir: Path) -> subprocess.Popen:
    inputs = connection.with_name(f"inputs-{ips[0]}.json")
    inputs.write_text(json.dumps({"ips": ips, "priority": priority, "max_wait_seconds": 3600}))
    env = {**os.environ, "DEFENDER_IP_STATE_DIR": str(state_dir)}
    return subprocess.Popen([tool, "run", "enrich_ip", "--connection", str(connection), "--input", str(inputs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def write_connection(emu: Emulator, path: Path, quota: dict) -> Path:
    path.write_text(json.dumps(emu.connection(quota={**quota, "limits": LIMITS, "share": SHARE})))
    return path


def report(name: str, emu: Emulator, procs: list[subprocess.Popen], started: float, n: int) -> None:
    for proc in procs:
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"{name}: a worker failed: {err[-2000:]}")
    stats = [r for r in emu.stats_calls() if r.status != 429]
    arrivals = [r.time for r in stats]
    duration = max(arrivals) - min(arrivals)
    peaks = ", ".join(f"{cap}/{per:g}s: {ratio:.2f}" for (cap, per), ratio in zip(caps(), peak_ratio(arrivals)))
    print(f"{name}: {len(stats)}/{n} calls answered, 429s seen: {emu.count(status=429)}, "
          f"peak per window vs cap [{peaks}], throughput vs ideal exact limiter: "
          f"{ideal_duration(len(stats)) / duration:.3f} ({duration:.1f} s for {ideal_duration(len(stats)):.1f} s ideal)")


def split(ips: list[str], parts: int) -> list[list[str]]:
    return [ips[i::parts] for i in range(parts)]


def ip_list(n: int, salt: int) -> list[str]:
    return [f"100.{salt}.{i // 250}.{i % 250 + 1}" for i in range(n)]


def scenario_sqlite(tool: str, tmp: Path, n: int, processes: int) -> None:
    with Emulator(limits=[(w["calls"], w["per_seconds"]) for w in LIMITS]) as emu:
        conn = write_connection(emu, tmp / "sqlite.json", {"backend": "sqlite"})
        state = tmp / "state-sqlite"
        started = time.time()
        procs = [worker(tool, conn, part, "analyst", state) for part in split(ip_list(n, 1), processes)]
        report(f"sqlite, {processes} processes", emu, procs, started, n)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def scenario_redis(tool: str, tmp: Path, n: int) -> None:
    server = shutil.which("redis-server")
    if not server:
        print("redis: skipped (no redis-server on PATH)")
        return
    port = free_port()
    redis = subprocess.Popen([server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        with Emulator(limits=[(w["calls"], w["per_seconds"]) for w in LIMITS]) as emu:
            conn = write_connection(emu, tmp / "redis.json", {"backend": "redis", "redis_url": f"redis://127.0.0.1:{port}/0"})
            parts = split(ip_list(n, 2), 6)
            procs = [worker(tool, conn, part, "analyst", tmp / f"host-{i // 3}") for i, part in enumerate(parts)]
            report("redis, 2 hosts x 3 processes", emu, procs, time.time(), n)
    finally:
        redis.terminate()
        redis.wait()


def scenario_analyst(tool: str, tmp: Path) -> None:
    with Emulator(limits=[(w["calls"], w["per_seconds"]) for w in LIMITS]) as emu:
        conn = write_connection(emu, tmp / "lanes.json", {"backend": "sqlite"})
        state = tmp / "state-lanes"
        procs = [worker(tool, conn, part, "scheduled", state) for part in split(ip_list(120, 3), 2)]
        while len(emu.stats_calls()) < 40:  # let the scheduled lane fill its share of both windows
            time.sleep(0.05)
        os.environ["DEFENDER_IP_STATE_DIR"] = str(state)
        document = json.loads(conn.read_text())
        started = time.time()
        run_action("enrich_ip", {"ips": ["8.8.8.8"], "priority": "analyst"}, document)
        arrived = [r.time for r in emu.stats_calls("8.8.8.8")][0]
        for proc in procs:
            proc.kill()
        print(f"analyst while scheduled saturates: waited {arrived - started:.3f} s from call start to its request "
              f"reaching the service (short window: 1 s)")


def scenario_cooldown(tool: str, tmp: Path) -> None:
    with Emulator(limits=[(1000, 1)]) as emu:
        emu.script("100.4.0.1", [Answer(status=429, headers={"Retry-After": "3"})])
        conn = write_connection(emu, tmp / "cooldown.json", {"backend": "sqlite"})
        state = tmp / "state-cooldown"
        procs = [worker(tool, conn, ["100.4.0.1"], "analyst", state)]
        while emu.count(status=429) == 0:
            time.sleep(0.01)
        procs += [worker(tool, conn, part, "analyst", state) for part in split(ip_list(40, 5), 4)]
        for proc in procs:
            proc.communicate()
        throttled_at = next(r.time for r in emu.requests if r.status == 429)
        during = [r for r in emu.stats_calls() if throttled_at < r.time < throttled_at + 3 - 0.05]
        print(f"forced 429 (Retry-After: 3): requests from any process during the cooldown: {len(during)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ips", type=int, default=200)
    parser.add_argument("--processes", type=int, default=8)
    args = parser.parse_args()
    tool = installed_tool()
    print(f"emulator and quota limits: {LIMITS}, share {SHARE}, caps {caps()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        scenario_sqlite(tool, tmp, args.ips, args.processes)
        scenario_redis(tool, tmp, args.ips)
        scenario_analyst(tool, tmp)
        scenario_cooldown(tool, tmp)


if __name__ == "__main__":
    main()
