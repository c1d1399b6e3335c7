"""Helpers shared by the tests: connection documents, a fake clock, a fake token provider."""

from __future__ import annotations

TENANT = "11111111-2222-3333-4444-555555555555"
CLIENT = "66666666-7777-8888-9999-000000000000"
SECRET = "s3cr3t-Value~for.tests_0123456789"


def connection_doc(**overrides) -> dict:
    """A minimal valid connection document for the global cloud, in-memory quota."""
    doc = {"tenant_id": TENANT, "client_id": CLIENT, "client_secret": SECRET, "quota": {"backend": "memory"}}
    doc.update(overrides)
    return doc


class FakeClock:
    """A monotonic clock tests move by hand; sleep() advances it instead of waiting."""

    def __init__(self, start: float = 1000.0):
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeTokens:
    """Hands out numbered tokens; invalidate() makes the next token() a new one."""

    def __init__(self):
        self.issued = 0
        self.invalidated: list[str] = []

    def token(self) -> str:
        if self.issued == 0 or self._current in self.invalidated:
            self.issued += 1
        return self._current

    @property
    def _current(self) -> str:
        return f"token-{self.issued}"

    def invalidate(self, rejected: str) -> None:
        self.invalidated.append(rejected)
