"""`defender-ip emulator`: serve the emulator in the foreground until Ctrl-C or SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading

from plugin.emulator.core import Emulator


def write_connection(path: str, connection: dict) -> None:
    """Write the connection JSON with mode 0600: it holds the emulator's client secret."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # O_CREAT's mode does not apply to a file that already existed
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(connection, handle, indent=2)
        handle.write("\n")


def _wait_for_stop() -> None:
    stop = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        # Handle SIGINT too: a shell starts background jobs with SIGINT ignored, and
        # `kill -INT` should still stop the emulator cleanly.
        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def serve(port: int = 0, write_connection_path: str | None = None, **emulator_kwargs) -> int:
    """Run the emulator until interrupted; write the connection file (0600) if asked. Returns 0.

    Without a path the connection JSON goes to stdout, so the emulator is usable at all;
    its secret is a random one valid only for this emulator run.
    """
    with Emulator(port=port, **emulator_kwargs) as emu:
        connection = emu.connection()
        if write_connection_path:
            write_connection(write_connection_path, connection)
            print(f"connection written to {write_connection_path}", file=sys.stderr)
        else:
            print(json.dumps(connection, indent=2), flush=True)
        print(f"Defender emulator listening on {emu.base_url} (CA: {emu.ca_path}); Ctrl-C to stop",
              file=sys.stderr, flush=True)
        _wait_for_stop()
    return 0
