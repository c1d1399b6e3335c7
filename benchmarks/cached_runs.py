"""Ten back-to-back `defender-ip run enrich_ip` processes for one IP, with the SQLite cache and token cache.

Prints the token requests and stats calls the emulator saw (goal: 1 each in total) and the
median wall time of one run as a ratio to `python -c "import requests"`, run interleaved.

    python benchmarks/cached_runs.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from common import installed_tool, timed
from plugin.emulator import Emulator


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    tool = installed_tool()
    inputs = json.dumps({"ips": ["10.209.67.177"], "priority": "analyst"})
    with tempfile.TemporaryDirectory() as tmp, Emulator() as emu:
        connection = Path(tmp) / "connection.json"
        connection.write_text(json.dumps(emu.connection(state_dir=str(Path(tmp) / "state"))))
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


if __name__ == "__main__":
    main()
