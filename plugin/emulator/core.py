"""The `Emulator`: one loopback HTTPS server playing Entra ID sign-in and the Defender API.

Routes: `GET /{tenant}/v2.0/.well-known/openid-configuration`, `POST /{tenant}/oauth2/v2.0/token`
(see `signin`), `GET /api/ips/{ip}/stats` (see `api` and `data`). Anything else is 404.

Staged answers come before the default behaviour. Order of checks on the stats route:

1. a method other than GET: 405;
2. the bearer token: without a live one, 401 and no staged answer is used, EXCEPT that a
   staged answer with status 401 is returned as is (that is how "a 401 that persists"
   is staged: `script_all_forever(Answer(status=401))`);
3. the staged answers, first found wins: `script_all` FIFO, `script_all_forever`, then
   the IP's `script` FIFO and `script_forever(ip)` (for the path segment as sent, then
   for its decoded form); a staged answer bypasses the rate limits, the role check and
   the IP check (unless it keeps the default behaviour, see below);
4. the default behaviour (`api.stats`: limits 429, role 403, lookBackHours and IP 400,
   data 404/200).

Token and discovery answers (`script_token`, `script_token_forever`, `script_discovery`)
come before every check of their route. An answer with status 200 and no body keeps the
default behaviour, delayed by its `delay` and broken by its `fault` if any ("reset"
answers nothing, so the default behaviour is not run and no quota is used). Every
request is recorded (`requests`, `stats_calls`), faulted ones too: status 0 when the
client got no complete response ("reset", "reset_mid_body"), `SeenRequest.fault` naming
the fault.
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
_ALL_IPS = ("stats-all",)  # the key of `script_all` and `script_all_forever` (per-IP keys are pairs)


@dataclass(frozen=True)
class SeenRequest:
    """One request as the emulator saw it: raw path (not decoded), query, answer status."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    time: float  # time.time() when the request was received
    kind: str  # "stats" | "token" | "discovery" | "other"
    fault: str | None = None  # the staged fault: "reset" | "reset_mid_body" | "stall" | None


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

    def script_forever(self, ip: str, answer: Answer | None) -> None:
        """Answer every stats call on `ip` with `answer` until cleared (None, or `clear_scripts()`).

        The IP's `script` FIFO still comes first while it has answers.
        """
        self._scripts.set_forever(("stats", ip), answer)

    def script_all(self, answers: Iterable[Answer]) -> None:
        """Stage answers used in order by stats calls on ANY IP, before every per-IP answer.

        E.g. a 429 storm: `script_all([faults.throttled("1")] * 20)`.
        """
        self._scripts.add(_ALL_IPS, answers)

    def script_all_forever(self, answer: Answer | None) -> None:
        """Answer every stats call on any IP with `answer` until cleared (None, or `clear_scripts()`).

        Comes after the `script_all` FIFO and before every per-IP answer. A 401 answer here
        is "a 401 that persists": it is returned even to requests without a valid token.
        """
        self._scripts.set_forever(_ALL_IPS, answer)

    def script_token(self, answers: Iterable[Answer]) -> None:
        """Stage answers for the token endpoint (e.g. 500s, delays; see `faults.token_*`)."""
        self._scripts.add(("token",), answers)

    def script_token_forever(self, answer: Answer | None) -> None:
        """Answer every token request with `answer` until cleared (None, or `clear_scripts()`)."""
        self._scripts.set_forever(("token",), answer)

    def clear_scripts(self) -> None:
        """Drop every staged answer (FIFOs and forever answers, every route)."""
        self._scripts.clear()

    def script_discovery(self, answers: Iterable[Answer]) -> None:
        """Stage answers for OpenID discovery (e.g. a document naming a foreign token endpoint)."""
        self._scripts.add(("discovery",), answers)

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token this emulator has issued (to check none leaks into any output)."""
        return list(self._tokens.issued)

    def revoke_tokens(self) -> None:
        """Invalidate every token issued so far: the next stats call with one gets a 401."""
        self._tokens.revoke_all()

    def expire_tokens(self) -> None:
        """Make every token issued so far expired, server-side only: clients still think
        them valid, and the next stats call with one gets a 401 "The access token has expired."
        ("a token that expires between two calls"). Tokens issued afterwards are fine.
        """
        self._tokens.expire_all()

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

    def count(self, status: int | None = None, kind: str | None = None, fault: str | None = None) -> int:
        """How many requests got `status` (and were of `kind`, had `fault`), e.g. `count(status=429)`."""
        return sum(1 for r in self.requests
                   if (status is None or r.status == status) and (kind is None or r.kind == kind)
                   and (fault is None or r.fault == fault))

    # ----- dispatch ---------------------------------------------------------------------

    def _dispatch(self, req: Incoming) -> Response:
        received = req.received or time.time()
        kind, response, fault = self._route(req)
        query = dict(parse_qsl(req.query, keep_blank_values=True))
        status = 0 if response.fault in ("reset", "reset_mid_body") else response.status
        with self._seen_lock:
            self._seen.append(SeenRequest(req.method, req.path, query, status, received, kind, fault))
        return response

    def _route(self, req: Incoming) -> tuple[str, Response, str | None]:
        base = self.base_url or ""
        if match := _STATS.fullmatch(req.path):
            return ("stats", *self._stats(req, match.group(1), base))
        if match := _TOKEN.fullmatch(req.path):
            return ("token", *self._token(req, unquote(match.group(1)), base))
        if match := _DISCOVERY.fullmatch(req.path):
            return ("discovery", *self._discovery(req, unquote(match.group(1)), base))
        return "other", defender_error(404, "No such route on the emulator.", "ResourceNotFound"), None

    def _stats(self, req: Incoming, segment: str, base: str) -> tuple[Response, str | None]:
        if req.method != "GET":
            return defender_error(405, "Only GET is supported on this route."), None
        grant, unauthorized = api.bearer_grant(req.headers.get("Authorization"), self._tokens)
        # Without a live token only a staged 401 may be used (and consumed).
        accept = None if grant is not None else (lambda a: a.status == 401)
        answer = self._scripts.take(_ALL_IPS, ("stats", segment), ("stats", unquote(segment)), accept=accept)
        if answer is None and grant is None:
            return unauthorized, None

        def default() -> Response:
            if grant is None:  # not reached: without a token only 401 answers are taken, never default ones
                return unauthorized
            query = dict(parse_qsl(req.query, keep_blank_values=True))
            return api.stats(segment, query, grant, self._limiter, base, self.reference_time)

        if answer is None:
            return default(), None
        return scripted(answer, api.default_error, default), answer.fault

    def _token(self, req: Incoming, tenant: str, base: str) -> tuple[Response, str | None]:
        correlation_id = req.headers.get("client-request-id")

        def default() -> Response:
            if req.method != "POST":
                return entra_error(405, "invalid_request", 900561, "The endpoint only accepts POST requests.",
                                   correlation_id)
            form = dict(parse_qsl(req.body.decode("utf-8", "replace"), keep_blank_values=True))
            return self._signin.token(base, tenant, form, correlation_id)

        answer = self._scripts.take(("token",))
        if answer is None:
            return default(), None
        return scripted(answer, lambda status: entra_error(
            status, "server_error" if status >= 500 else "invalid_request", 50000,
            "There was an error issuing a token (staged by the emulator).", correlation_id), default), answer.fault

    def _discovery(self, req: Incoming, tenant: str, base: str) -> tuple[Response, str | None]:
        answer = self._scripts.take(("discovery",))
        if answer is None:
            return self._signin.discovery(base, tenant), None
        return scripted(answer, lambda status: entra_error(
            status, "server_error", 50000, "Discovery failed (staged by the emulator).", None),
            lambda: self._signin.discovery(base, tenant)), answer.fault


def _stats_segment(path: str) -> str:
    match = _STATS.fullmatch(path)
    return match.group(1) if match else ""
