"""Wall time of the README's first command and of one `defender-ip run`, side by side with a baseline.

Runs each command N times, interleaved (so machine noise hits all alike), and prints the
medians and their ratio to `python -c "import requests"`, the floor of any Python HTTP CLI.

    python benchmarks/cli_wall_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import installed_tool, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    tool = installed_tool()
    with tempfile.TemporaryDirectory() as tmp:
        conn_path = Path(tmp) / "emulator.json"
        server = subprocess.Popen([tool, "emulator", "--write-connection", str(conn_path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not conn_path.exists() or not conn_path.read_text().rstrip().endswith("}"):
                time.sleep(0.05)
            doc = json.loads(conn_path.read_text())
            doc["quota"] = {"backend": "memory"}  # no result cache across runs: every run makes its stats call
            doc["state_dir"] = str(Path(tmp) / "state")  # token cache: every run after the first skips sign-in
            conn_path.write_text(json.dumps(doc))
            commands = {
                "python -c 'import requests'": ([sys.executable, "-c", "import requests"], None),
                "defender-ip enrich 10.209.67.177 --emulator": ([tool, "enrich", "10.209.67.177", "--emulator"], None),
                "defender-ip run enrich_ip (running emulator)": (
                    [tool, "run", "enrich_ip", "--connection", str(conn_path)],
                    json.dumps({"ips": ["10.209.67.177"], "priority": "analyst"})),
            }
            times: dict[str, list[float]] = {name: [] for name in commands}
            for _ in range(args.runs):
                for name, (cmd, stdin) in commands.items():
                    times[name].append(timed(cmd, stdin))
        finally:
            server.terminate()
            server.wait()
    baseline = statistics.median(times["python -c 'import requests'"])
    print(f"{'command':48} {'median s':>9} {'vs import requests':>19}   ({args.runs} interleaved runs)")
    for name, samples in times.items():
        median = statistics.median(samples)
        print(f"{name:48} {median:9.3f} {median / baseline:18.2f}x")


if __name__ == "__main__":
    main()
