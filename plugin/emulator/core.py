"""The `Emulator`: one loopback HTTPS server playing Entra ID sign-in and the Defender API.

Routes: `GET /{tenant}/v2.0/.well-known/openid-configuration`, `POST /{tenant}/oauth2/v2.0/token`
(see `signin`), `GET /api/ips/{ip}/stats` (see `api` and `data`). Anything else is 404.

Staged answers (`script`, `script_token`, `script_discovery`) come before the default
behaviour. A staged stats answer still needs a live bearer token (so 401 tests stay
meaningful) but bypasses the rate limits, the role check and the IP check. A staged
token or discovery answer comes before every check. An answer with status 200 and no body
just delays the default behaviour.
"""

from __future__ import annotations

import datetime as _dt
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import Iterable
from urllib.parse import parse_qsl, unquote

from plugin.emulator import api
from plugin.emulator.certs import load_certificate, server_context, write_tls_files
from plugin.emulator.limits import DEFAULT_LIMITS, SlidingWindows
from plugin.emulator.responses import Response, defender_error, entra_error, scripted
from plugin.emulator.scripting import Answer, Scripts
from plugin.emulator.server import Incoming, TlsServer
from plugin.emulator.signin import App, SignIn
from plugin.emulator.tokens import TokenStore

DEFAULT_TENANT_ID = "8f3c2a1e-5b7d-4c9e-a0f1-2d3e4f5a6b7c"
DEFAULT_CLIENT_ID = "b1e2c3d4-a5f6-4789-8abc-0def12345678"
DEFAULT_SCOPE = "https://api.securitycenter.microsoft.com/.default"

_DISCOVERY = re.compile(r"/([^/]+)/v2\.0/\.well-known/openid-configuration")
_TOKEN = re.compile(r"/([^/]+)/oauth2/v2\.0/token")
_STATS = re.compile(r"/api/ips/([^/]*)/stats", re.IGNORECASE)


@dataclass(frozen=True)
class SeenRequest:
    """One request as the emulator saw it: raw path (not decoded), query, answer status."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    time: float  # time.time() when the request was received
    kind: str  # "stats" | "token" | "discovery" | "other"


class Emulator:
    """Offline Defender for Endpoint + Entra ID over real HTTPS on loopback."""

    def __init__(
        self,
        *,
        limits: Iterable = DEFAULT_LIMITS,
        token_lifetime_seconds: float = 3600,
        tenant_id: str = DEFAULT_TENANT_ID,
        client_id: str = DEFAULT_CLIENT_ID,
        client_secret: str | None = None,
        roles: Iterable[str] | None = None,
        port: int = 0,
        host: str = "127.0.0.1",
        reference_time: _dt.datetime | None = None,
    ):
        self.tenant_id = tenant_id
        self.client_id = client_id
        self.client_secret = client_secret if client_secret is not None else secrets.token_urlsafe(24)
        self.token_lifetime_seconds = token_lifetime_seconds
        self.host = host
        self.port = port
        self.reference_time = reference_time
        self.base_url: str | None = None
        self.ca_path: str | None = None
        self._roles = frozenset({api.REQUIRED_ROLE} if roles is None else roles)
        self._limiter = SlidingWindows(limits)
        self._tokens = TokenStore()
        self._scripts = Scripts()
        self._signin = SignIn(tenant_id, App(client_id, self.client_secret), self._tokens,
                              lambda: self.token_lifetime_seconds, lambda: self._roles)
        self._seen: list[SeenRequest] = []
        self._seen_lock = threading.Lock()
        self._server: TlsServer | None = None
        self._thread: threading.Thread | None = None
        self._tempdir: str | None = None

    def __repr__(self) -> str:  # no secret in reprs, logs or test failure output
        return f"Emulator(base_url={self.base_url!r}, tenant_id={self.tenant_id!r}, client_id={self.client_id!r})"

    # ----- lifecycle -------------------------------------------------------------------

    def start(self) -> Emulator:
        """Create the CA and certificate, bind the port and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._tempdir = tempfile.mkdtemp(prefix="defender-ip-emulator-")
        try:
            files = write_tls_files(self._tempdir)
            self._server = TlsServer(self.host, self.port, server_context(files), self._dispatch)
        except BaseException:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            raise
        self.ca_path = files.ca_path
        self.port = self._server.server_address[1]
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"https://{shown}:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="defender-ip-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close open connections and delete the CA and key files."""
        server, self._server = self._server, None
        if server is not None:
            server.close_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ----- configuration and staging --------------------------------------------------

    def connection(self, **overrides) -> dict:
        """A plugin connection dict pointing at this emulator (keys overridable)."""
        if self.base_url is None:
            raise RuntimeError("start the emulator first")
        return {
            "tenant_id": self.tenant_id,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "api_base_url": self.base_url,
            "authority_host": self.base_url,
            "scope": DEFAULT_SCOPE,
            "ca_bundle": self.ca_path,
            **overrides,
        }

    @property
    def limits(self) -> list[dict]:
        """The rate limits as `[{"calls", "per_seconds"}]`, the connection's `quota.limits` shape."""
        return [{"calls": c, "per_seconds": p} for c, p in self._limiter.limits]

    def set_limits(self, limits: Iterable) -> None:
        """Replace the rate limits: (calls, per_seconds) pairs or {"calls", "per_seconds"} dicts."""
        self._limiter.set_limits(limits)

    def script(self, ip: str, answers: Iterable[Answer]) -> None:
        """Stage answers for stats calls on `ip` (the path segment as sent, or its decoded form)."""
        self._scripts.add(("stats", ip), answers)

    def script_token(self, answers: Iterable[Answer]) -> None:
        """Stage answers for the token endpoint (e.g. 500s, delays)."""
        self._scripts.add(("token",), answers)

    def script_discovery(self, answers: Iterable[Answer]) -> None:
        """Stage answers for OpenID discovery (e.g. a document naming a foreign token endpoint)."""
        self._scripts.add(("discovery",), answers)

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far: the next stats call with one gets a 401."""
        self._tokens.revoke_all()

    def set_roles(self, roles: Iterable[str]) -> None:
        """Set the app roles for tokens issued from now on (issued tokens keep theirs)."""
        self._roles = frozenset(roles)

    def register_certificate(self, cert_pem: bytes | str) -> None:
        """Register a certificate (PEM) as a credential of the app."""
        self._signin.register_certificate(load_certificate(cert_pem))

    def reset_counters(self) -> None:
        """Forget seen requests and rate-limit history (tokens and staged answers stay)."""
        with self._seen_lock:
            self._seen.clear()
        self._limiter.reset()

    # ----- observability --------------------------------------------------------------

    @property
    def requests(self) -> list[SeenRequest]:
        """A copy of every request seen so far, in the order they were answered."""
        with self._seen_lock:
            return list(self._seen)

    def stats_calls(self, ip: str | None = None) -> list[SeenRequest]:
        """Stats requests, optionally only those for `ip` (raw or decoded path segment)."""
        calls = [r for r in self.requests if r.kind == "stats"]
        if ip is None:
            return calls
        return [r for r in calls if ip in (_stats_segment(r.path), unquote(_stats_segment(r.path)))]

    @property
    def token_requests(self) -> list[SeenRequest]:
        """Requests to the token endpoint."""
        return [r for r in self.requests if r.kind == "token"]

    def count(self, status: int | None = None, kind: str | None = None) -> int:
        """How many requests got `status` (and were of `kind`), e.g. `count(status=429)`."""
        return sum(1 for r in self.requests
                   if (status is None or r.status == status) and (kind is None or r.kind == kind))

    # ----- dispatch ---------------------------------------------------------------------

    def _dispatch(self, req: Incoming) -> Response:
        received = time.time()
        kind, response = self._route(req)
        query = dict(parse_qsl(req.query, keep_blank_values=True))
        with self._seen_lock:
            self._seen.append(SeenRequest(req.method, req.path, query, response.status, received, kind))
        return response

    def _route(self, req: Incoming) -> tuple[str, Response]:
        base = self.base_url or ""
        if match := _STATS.fullmatch(req.path):
            return "stats", self._stats(req, match.group(1), base)
        if match := _TOKEN.fullmatch(req.path):
            return "token", self._token(req, unquote(match.group(1)), base)
        if match := _DISCOVERY.fullmatch(req.path):
            return "discovery", self._discovery(req, unquote(match.group(1)), base)
        return "other", defender_error(404, "No such route on the emulator.", "ResourceNotFound")

    def _stats(self, req: Incoming, segment: str, base: str) -> Response:
        if req.method != "GET":
            return defender_error(405, "Only GET is supported on this route.")
        grant, unauthorized = api.bearer_grant(req.headers.get("Authorization"), self._tokens)
        if grant is None:
            return unauthorized
        answer = self._scripts.take(("stats", segment), ("stats", unquote(segment)))
        if answer is not None and not answer.is_default:
            return scripted(answer, api.default_error)
        query = dict(parse_qsl(req.query, keep_blank_values=True))
        response = api.stats(segment, query, grant, self._limiter, base, self.reference_time)
        response.delay += answer.delay if answer else 0.0
        return response

    def _token(self, req: Incoming, tenant: str, base: str) -> Response:
        correlation_id = req.headers.get("client-request-id")
        answer = self._scripts.take(("token",))
        if answer is not None and not answer.is_default:
            return scripted(answer, lambda status: entra_error(
                status, "server_error" if status >= 500 else "invalid_request", 50000,
                "There was an error issuing a token (staged by the emulator).", correlation_id))
        if req.method != "POST":
            response = entra_error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.",
                                   correlation_id)
        else:
            form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
            response = self._signin.token(base, tenant, form, correlation_id)
        response.delay += answer.delay if answer else 0.0
        return response

    def _discovery(self, req: Incoming, tenant: str, base: str) -> Response:
        answer = self._scripts.take(("discovery",))
        if answer is not None and not answer.is_default:
            return scripted(answer, lambda status: entra_error(
                status, "server_error", 50000, "Discovery failed (staged by the emulator).", None))
        response = self._signin.discovery(base, tenant)
        response.delay += answer.delay if answer else 0.0
        return response


def _stats_segment(path: str) -> str:
    match = _STATS.fullmatch(path)
    return match.group(1) if match else ""
