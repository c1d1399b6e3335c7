"""App-only sign-in with MSAL: one token provider per connection, refreshed once on a 401."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import msal
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from plugin.clouds import CLOUDS
from plugin.config import Connection, Credential
from plugin.errors import AuthError, ConfigError, ServiceUnavailableError
from plugin.redaction import redact, register_secret
from plugin.transport import UnexpectedOriginError, sign_in_session

log = logging.getLogger(__name__)

SIGN_IN_ATTEMPTS = 3  # a token-endpoint 5xx or network error is retried twice, then the call fails
SIGN_IN_BACKOFF_SECONDS = 0.5


class TokenCacheFile:
    """MSAL's token cache, kept in an owner-only file in the state dir so the next process reuses a valid token.

    Why: each `defender-ip run` is a new process; without this every one of them would sign in
    again. Writes are atomic (a temporary file renamed over the old one), so a reader never
    sees half a file; the last writer wins, which at worst costs one more sign-in.
    """

    def __init__(self, path: Path | None):
        self.path = path
        self.cache = msal.SerializableTokenCache()
        if path is None:  # in memory only
            return
        try:
            self.cache.deserialize(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            pass
        except (OSError, ValueError):
            log.warning("ignoring an unreadable token cache file")

    def save(self) -> None:
        """Write the cache if it changed; a failure only costs the next process a sign-in."""
        if self.path is None or not self.cache.has_state_changed:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            fd, temp = tempfile.mkstemp(dir=self.path.parent, prefix=".tokens-")  # mkstemp creates it 0600
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(self.cache.serialize())
            os.replace(temp, self.path)
            self.cache.has_state_changed = False
        except OSError:
            log.warning("could not save the token cache in the state dir")


def token_cache_path(conn: Connection) -> Path:
    """One cache file per app, tenant and sign-in endpoint, named by a digest (no ids in file names)."""
    identity = "\0".join((conn.budget_key, conn.endpoints.authority_host, conn.endpoints.scope))
    return Path(conn.state_dir) / f"tokens-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.json"


class TokenProvider:
    """Gets app-only tokens for the Defender API through MSAL, cached in memory and in the state dir.

    Thread-safe: a batch's worker threads share one provider and so one token.
    """

    def __init__(self, conn: Connection, *, sleep: Callable[[float], None] = time.sleep, persist: bool = True):
        self._conn = conn
        self._sleep = sleep
        self._lock = threading.Lock()
        self._app: msal.ConfidentialClientApplication | None = None
        # persist=False (the connection check) starts empty, so it always proves the credential.
        self._store = TokenCacheFile(token_cache_path(conn) if persist else None)
        self._cache = self._store.cache
        self._credential = load_client_credential(conn.credential)

    def token(self) -> str:
        """A valid access token: from MSAL's cache, else from the sign-in service."""
        with self._lock:
            for attempt in range(1, SIGN_IN_ATTEMPTS + 1):
                try:
                    return self._acquire()
                except ServiceUnavailableError:
                    if attempt == SIGN_IN_ATTEMPTS:
                        raise
                    # MSAL replays a failed answer from its throttle cache: start a fresh app.
                    self._app = None
                    self._sleep(SIGN_IN_BACKOFF_SECONDS * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def invalidate(self, rejected: str) -> None:
        """Drop a token the API rejected with 401, so the next token() asks for a fresh one.

        MSAL has no force-refresh for client credentials and would hand back the same token.
        Only the rejected token is removed: when several threads see the same 401, the first
        removes it and the others leave the fresh one alone.
        """
        with self._lock:
            kind = msal.TokenCache.CredentialType.ACCESS_TOKEN
            for item in list(self._cache.search(kind)):
                if item.get("secret") == rejected:
                    self._cache.remove_at(item)
                    log.debug("dropped the access token the API rejected")
            self._store.save()  # so no other process reuses it either

    def _acquire(self) -> str:
        """One attempt at a token; maps every failure to a whole-call error."""
        try:
            app = self._app or self._build_app()
            self._app = app
            result = app.acquire_token_for_client(scopes=[self._conn.endpoints.scope])
        except UnexpectedOriginError:
            raise ConfigError(
                "connection.authority_host: the sign-in service named a token endpoint on another host",
                code="unsafe_endpoint",
            ) from None
        except requests.exceptions.SSLError:
            raise ServiceUnavailableError(
                "sign-in service failed TLS verification (check connection.ca_bundle)"
            ) from None
        except (requests.exceptions.RequestException, msal.exceptions.MsalServiceError, RuntimeError) as exc:
            raise ServiceUnavailableError(f"sign-in service could not be reached or failed ({type(exc).__name__})") from None
        except json.JSONDecodeError:
            raise ServiceUnavailableError("the sign-in service sent an answer that is not JSON") from None
        except ValueError as exc:
            # MSAL raises ValueError when OpenID discovery answers 4xx, e.g. an unknown tenant.
            raise AuthError(f"sign-in service rejected the tenant: {_aadsts(str(exc)) or 'discovery failed'}") from None
        if "access_token" not in result:
            raise AuthError(_rejection_message(result))
        register_secret(result["access_token"])
        if result.get("token_source") == "identity_provider":
            log.debug("got a new access token from the sign-in service")
            self._store.save()
        return result["access_token"]

    def _build_app(self) -> msal.ConfidentialClientApplication:
        """MSAL app using our pinned session, so ca_bundle, proxy and timeouts apply to sign-in."""
        endpoints = self._conn.endpoints
        overridden = endpoints.authority_host != CLOUDS[endpoints.cloud].authority_host
        return msal.ConfidentialClientApplication(
            self._conn.client_id,
            client_credential=self._credential,
            authority=f"{endpoints.authority_host}/{self._conn.tenant_id}",
            http_client=sign_in_session(self._conn),
            token_cache=self._cache,
            # Instance discovery asks Microsoft whether the host is a known cloud: pointless
            # (and failing) for an overridden host such as the emulator.
            instance_discovery=False if overridden else None,
        )


def load_client_credential(credential: Credential) -> str | dict:
    """The client_credential MSAL expects: the secret, or key + certificate from PEM or PFX."""
    if credential.client_secret is not None:
        return credential.client_secret
    data = Path(credential.certificate_path).read_bytes()
    password = credential.certificate_passphrase.encode() if credential.certificate_passphrase else None
    key, cert = _load_pem(data, password) if b"-----BEGIN" in data else _load_pfx(data, password)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    register_secret(key_pem)
    # With public_certificate MSAL signs with the SHA-256 thumbprint and sends x5c, which
    # subject-name/issuer registrations need.
    return {"private_key": key_pem, "public_certificate": cert.public_bytes(serialization.Encoding.PEM).decode()}


def _load_pem(data: bytes, password: bytes | None):
    """Private key and matching certificate from one PEM file."""
    try:
        key = serialization.load_pem_private_key(data, password)
    except (TypeError, ValueError):
        raise ConfigError(
            "connection.certificate_path: no readable private key (wrong or missing certificate_passphrase?)"
        ) from None
    certs = x509.load_pem_x509_certificates(data) if b"CERTIFICATE-----" in data else []
    return key, _matching_cert(key, certs)


def _load_pfx(data: bytes, password: bytes | None):
    """Private key and certificate from a PFX (PKCS#12) file."""
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except (TypeError, ValueError):
        raise ConfigError(
            "connection.certificate_path: not a readable PEM or PFX file (wrong or missing certificate_passphrase?)"
        ) from None
    if key is None:
        raise ConfigError("connection.certificate_path: the PFX file holds no private key")
    return key, _matching_cert(key, [c for c in [cert, *extra] if c is not None])


def _matching_cert(key, certs: list) -> x509.Certificate:
    """The certificate whose public key belongs to the private key."""
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for cert in certs:
        if cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo) == public:
            return cert
    raise ConfigError("connection.certificate_path: holds no certificate matching its private key")


def _rejection_message(result: dict) -> str:
    """Entra's error and AADSTS code, and the first sentence of its description; never the secret."""
    error = str(result.get("error", "unknown_error"))[:64]
    description = str(result.get("error_description", ""))
    code = _aadsts(description)
    first_sentence = re.sub(r"^AADSTS\d+:\s*", "", description).split(". ")[0][:200]
    detail = f" ({code}: {first_sentence})" if code else ""
    return redact(f"sign-in service rejected the credential: {error}{detail}")


def _aadsts(text: str) -> str | None:
    """The first AADSTS error code in a text."""
    match = re.search(r"AADSTS\d+", text)
    return match.group(0) if match else None
