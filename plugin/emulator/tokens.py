"""Opaque access tokens issued by the emulator's sign-in side and checked by its API side.

Tokens are random strings (not JWTs); the store maps each to its grant. Roles are fixed at
issue time, as in a real token: changing the emulator's roles affects new tokens only.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable


@dataclass(frozen=True)
class Grant:
    """What an access token stands for."""

    client_id: str
    tenant: str
    expires_at: float  # on the store's clock (monotonic)
    roles: frozenset[str]


class TokenStore:
    """Thread-safe token -> grant map with expiry and bulk revocation."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self._clock = clock
        self._lock = threading.Lock()
        self._grants: dict[str, Grant] = {}
        self.issued: list[str] = []  # every token ever minted, revoked ones too (secret-hygiene tests scan for them)

    def issue(self, client_id: str, tenant: str, roles: frozenset[str], lifetime: float) -> str:
        """Mint a new token for the app + tenant with the given roles and lifetime."""
        token = secrets.token_urlsafe(32)
        grant = Grant(client_id, tenant, self._clock() + lifetime, frozenset(roles))
        with self._lock:
            self._grants[token] = grant
            self.issued.append(token)
        return token

    def check(self, token: str) -> tuple[Grant | None, str]:
        """(grant, "") for a live token, else (None, why): "unknown" or "expired"."""
        with self._lock:
            grant = self._grants.get(token)
        if grant is None:
            return None, "unknown"
        if self._clock() >= grant.expires_at:
            return None, "expired"
        return grant, ""

    def expire_all(self) -> None:
        """Make every token issued so far expired (they are still known, so checks say "expired")."""
        with self._lock:
            now = self._clock()
            self._grants = {token: replace(grant, expires_at=min(grant.expires_at, now))
                            for token, grant in self._grants.items()}

    def revoke_all(self) -> None:
        """Invalidate every token issued so far."""
        with self._lock:
            self._grants.clear()
