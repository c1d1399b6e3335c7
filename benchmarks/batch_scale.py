"""The batch job at scale against the emulator with the limits raised.

1. A 10,000-line input (40 % repeats, 5 % invalid, 5 % loopback/unspecified): API calls vs
   unique callable IPs (goal: equal), peak RSS of the batch process at 1,000 and 10,000
   lines (goal: flat, < 150 MB), records written vs IP lines (goal: equal).
2. The same input, the batch killed with SIGKILL three times at random points and resumed
   with the same command: lines lost or doubled (goal 0) and calls beyond the unique count
   (goal <= 4 per kill, the calls in flight).

    python benchmarks/batch_scale.py [--lines 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from common import installed_tool
from plugin.emulator import Emulator
from plugin.ips import parse_item

HIGH_LIMITS = [{"calls": 1_000_000, "per_seconds": 60}]


def make_input(n: int, rng: random.Random) -> list[str]:
    """n lines: 50 % distinct public IPs, 40 % repeats of them, 5 % junk, 5 % loopback/unspecified."""
    unique = [f"{rng.randint(1, 90)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}" for _ in range(n // 2)]
    lines = list(unique)
    lines += [rng.choice(unique) for _ in range(n * 40 // 100)]
    lines += [rng.choice(["not-an-ip", "10.0.0.1/24", "fe80::1%eth0", "1.2.3.4:443", "http://x"]) for _ in range(n * 5 // 100)]
    lines += [rng.choice(["127.0.0.1", "::1", "0.0.0.0", "::"]) for _ in range(n - len(lines))]
    rng.shuffle(lines)
    return lines


def unique_callable(lines: list[str]) -> int:
    return len({p.ip for p in map(parse_item, lines) if p.status == "callable"})


def batch_cmd(tool: str, source: Path, output: Path, connection: Path) -> list[str]:
    return [tool, "batch", str(source), "--output", str(output), "--connection", str(connection)]


def run_to_end(cmd: list[str]) -> tuple[int, float]:
    """Exit code and the peak RSS (MB) of this child."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    proc = subprocess.run(cmd, capture_output=True, text=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode not in (0, 75):
        sys.exit(proc.stderr[-2000:])
    return proc.returncode, max(peak, before) / 1024


def check_output(output: Path, lines: list[str]) -> tuple[int, int]:
    """(lines without a record, lines with more than one)."""
    seen = Counter(json.loads(line)["line"] for line in output.read_text().splitlines())
    return len(lines) - len(seen), sum(1 for count in seen.values() if count > 1)


def connection_for(emu: Emulator, tmp: Path, name: str) -> Path:
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(emu.connection(state_dir=str(tmp / f"state-{name}"), quota={"limits": HIGH_LIMITS})))
    return path


def scale(tool: str, tmp: Path, lines: list[str]) -> None:
    rss = {}
    for n in (1000, len(lines)):
        with Emulator(limits=[(1_000_000, 60)]) as emu:
            source = tmp / f"scale-{n}.txt"
            source.write_text("\n".join(lines[:n]) + "\n")
            output = tmp / f"scale-{n}.ndjson"
            started = time.monotonic()
            code, rss[n] = run_to_end(batch_cmd(tool, source, output, connection_for(emu, tmp, f"scale-{n}")))
            seconds = time.monotonic() - started
            lost, doubled = check_output(output, lines[:n])
            print(f"{n} lines: exit {code}, API calls {len(emu.stats_calls())} vs unique callable IPs "
                  f"{unique_callable(lines[:n])}, records {n - lost} of {n} lines, doubled {doubled}, "
                  f"peak RSS {rss[n]:.0f} MB, {seconds:.1f} s")
    print(f"peak RSS ratio 10x the lines: {rss[len(lines)] / rss[1000]:.2f}")


def kills(tool: str, tmp: Path, lines: list[str], rng: random.Random) -> None:
    with Emulator(limits=[(1_000_000, 60)]) as emu:
        source = tmp / "kill.txt"
        source.write_text("\n".join(lines) + "\n")
        output = tmp / "kill.ndjson"
        cmd = batch_cmd(tool, source, output, connection_for(emu, tmp, "kill"))
        target = unique_callable(lines)
        for point in sorted(rng.sample(range(target // 10, target * 9 // 10), 3)):
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while len(emu.stats_calls()) < point and proc.poll() is None:
                time.sleep(0.002)
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        run_to_end(cmd)
        lost, doubled = check_output(output, lines)
        extra = len(emu.stats_calls()) - target
        print(f"killed with SIGKILL 3 times, resumed: lines lost {lost}, doubled {doubled}, "
              f"calls beyond the unique count {extra} (at most 4 in flight per kill)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    tool = installed_tool()
    rng = random.Random(args.seed)
    lines = make_input(args.lines, rng)
    with tempfile.TemporaryDirectory() as tmp:
        scale(tool, Path(tmp), lines)
        kills(tool, Path(tmp), lines, rng)


if __name__ == "__main__":
    main()
