"""A real, throwaway redis-server on a free loopback port for the tests (import the `redis_url` fixture).

Without the binary the Redis tests skip, saying so; under CI=true they fail instead, since CI
installs it and a silent skip there would hide the only cross-host tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def redis_url():
    """redis://127.0.0.1:<port>/0 of a redis-server started for this test session, stopped after it."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "redis-server is not installed (Debian/Ubuntu: apt-get install redis-server); the Redis quota tests need a real server"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " - CI must install it")
        pytest.skip(reason)
    import redis

    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if server.poll() is not None or time.monotonic() > deadline:
                    server.kill()
                    pytest.fail(f"redis-server did not answer PING: {server.stderr.read().decode(errors='replace')[-500:]}")
                time.sleep(0.05)
        yield url
    finally:
        client.close()
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
