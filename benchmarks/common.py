"""Helpers shared by the benchmark scripts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time


def installed_tool() -> str:
    """Path of the installed `defender-ip` command (benchmarks measure the installed package)."""
    return shutil.which("defender-ip") or sys.exit("install the package first: pip install .")


def timed(cmd: list[str], stdin: str | None = None) -> float:
    """Wall seconds of one run of cmd, which must succeed."""
    start = time.perf_counter()
    subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=True)
    return time.perf_counter() - start
