"""Wall time of the README's first command and of one `defender-ip run`, side by side with a baseline.

Runs each command N times, interleaved (so machine noise hits all alike), and prints the
medians and their ratio to `python -c "import requests"`, the floor of any Python HTTP CLI.

    python benchmarks/cli_wall_time.py [--runs 15]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], stdin: str | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    tool = shutil.which("defender-ip") or sys.exit("install the package first: pip install .")
    with tempfile.TemporaryDirectory() as tmp:
        conn_path = Path(tmp) / "emulator.json"
        server = subprocess.Popen([tool, "emulator", "--write-connection", str(conn_path)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while not conn_path.exists() or not conn_path.read_text().rstrip().endswith("}"):
                time.sleep(0.05)
            doc = json.loads(conn_path.read_text())
            doc["quota"] = {"backend": "memory"}
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
