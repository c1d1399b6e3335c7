"""Ten back-to-back `defender-ip run enrich_ip` processes for one IP, with the SQLite cache and token cache.

Prints the token requests and stats calls the emulator saw (goal: 1 each in total) and the
median wall time of one run as a ratio to `python -c "import requests"`, run interleaved.
Then two processes started together over the same 100 new IPs: how many calls the lack of a
cross-process single flight costs (each IP at most one duplicate).

    python benchmarks/cached_runs.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import installed_tool, timed
from plugin.emulator import Answer, Emulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    tool = installed_tool()
    inputs = json.dumps({"ips": ["10.209.67.177"], "priority": "analyst"})
    with tempfile.TemporaryDirectory() as tmp, Emulator(limits=[(100_000, 60)]) as emu:
        connection = Path(tmp) / "connection.json"
        connection.write_text(json.dumps(emu.connection(state_dir=str(Path(tmp) / "state"),
                                                        quota={"limits": [{"calls": 100_000, "per_seconds": 60}]})))
        run = [tool, "run", "enrich_ip", "--connection", str(connection)]
        baseline = [sys.executable, "-c", "import requests"]
        runs, floors = [], []
        for _ in range(args.runs):
            runs.append(timed(run, inputs))
            floors.append(timed(baseline))
        print(f"{args.runs} back-to-back runs for one IP: token requests seen: {len(emu.token_requests)}, "
              f"stats calls seen: {len(emu.stats_calls())}")
        print(f"median run {statistics.median(runs):.3f} s, median `import requests` {statistics.median(floors):.3f} s, "
              f"ratio {statistics.median(runs) / statistics.median(floors):.2f} (first run, which signs in: {runs[0]:.3f} s)")
        emu.script_all_forever(Answer(status=200, delay=0.1))  # a live API's latency, so the two overlap
        extra = []
        for round_ in range(5):
            ips = [f"100.66.{round_}.{i}" for i in range(1, 101)]
            inputs_file = Path(tmp) / f"inputs-{round_}.json"
            inputs_file.write_text(json.dumps({"ips": ips, "priority": "analyst"}))
            before = len(emu.stats_calls())
            procs = [subprocess.Popen([*run, "--input", str(inputs_file)], stdout=subprocess.DEVNULL) for _ in range(2)]
            for proc in procs:
                proc.wait()
            extra.append(len(emu.stats_calls()) - before - len(ips))
        print(f"2 processes started together over the same 100 new IPs (100 ms answers), 5 rounds: duplicate calls "
              f"per round {extra} (no cross-process single flight: at most one duplicate per IP and process)")

if __name__ == "__main__":
    main()
