"""The one place that loops over attempts: quota permit, token, request, and what each answer means."""

from __future__ import annotations

import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Mapping

import requests

from plugin.config import Connection
from plugin.errors import AuthError, PermissionDeniedError, ServiceUnavailableError
from plugin.models import Meter
from plugin.quota import Quota, make_quota, shared_quota
from plugin.shared import shared
from plugin.retry import DEFAULT_RETRY_AFTER_SECONDS, RetryPolicy, parse_retry_after
from plugin.transport import api_session

if TYPE_CHECKING:
    from plugin.auth import TokenProvider

log = logging.getLogger(__name__)

# No answer, or an answer cut off (a reset mid-body surfaces as ChunkedEncodingError while reading).
TRANSIENT_ERRORS = (
    requests.exceptions.Timeout,
    requests.exceptions.ConnectionError,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
MAX_BODY_BYTES = 1_048_576  # a stats body is ~300 bytes; anything near 1 MiB is not one


class CallDeferred(Exception):
    """The wait budget ran out before a permit (or a 429 pause) allowed the call."""

    def __init__(self, code: str, retry_after_seconds: float):
        super().__init__(code)
        self.code = code
        self.retry_after_seconds = retry_after_seconds


class CallFailed(Exception):
    """The call could not get a usable answer within the retry policy."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Response:
    """A final answer from the API, read within the size cap."""

    status: int
    body: bytes
    headers: Mapping[str, str]


class DefenderSession:
    """Sends GETs to the Defender API under the shared quota, with auth and retries per attempt."""

    def __init__(
        self,
        conn: Connection,
        *,
        quota: Quota | None = None,
        tokens: "TokenProvider | None" = None,
        http: requests.Session | None = None,
        policy: RetryPolicy = RetryPolicy(),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        self.conn = conn
        # Only the in-process store may run on this session's (possibly fake) monotonic clock;
        # SQLite and Redis run on clocks every process shares.
        self.quota = quota or make_quota(conn, clock=clock if conn.quota.backend == "memory" else None)
        self._tokens = tokens
        self.http = http or api_session(conn)
        self.policy = policy
        self.clock = clock
        self.sleep = sleep
        self.rng = rng or random.Random()

    @property
    def tokens(self) -> "TokenProvider":
        """The token provider, made on first use.

        Why lazily: MSAL and cryptography are the slowest imports of the plugin, and a call
        answered entirely from the cache needs neither.
        """
        if self._tokens is None:
            from plugin.auth import TokenProvider

            self._tokens = TokenProvider(self.conn, sleep=self.sleep)
        return self._tokens

    def get(self, path: str, params: dict, *, lane: str, deadline: float, meter: Meter) -> Response:
        """GET `path` and return the final answer, or raise CallDeferred / CallFailed / a whole-call error."""
        url = self.conn.endpoints.api_base_url + path
        failures = 0
        refreshed = False
        throttled = False
        while True:
            token = self.tokens.token()  # before the permit, so a slow sign-in does not age it
            permit = self._wait_for_permit(lane, deadline, "throttled" if throttled else "quota_wait_exceeded")
            meter.count_call()
            try:
                response = self._send(url, params, token, permit)
            except TRANSIENT_ERRORS as exc:
                code = "timeout" if isinstance(exc, requests.exceptions.Timeout) else "connection_error"
                failures += 1
                self._back_off(failures, deadline, code, f"no answer from the Defender API ({code.replace('_', ' ')})")
                continue
            log.debug("GET %s -> %s", path, response.status)
            if response.status == 401:
                if refreshed:
                    raise AuthError("the Defender API rejected a freshly issued token (401)")
                # Tokens can be revoked or expire early; one fresh token is worth one retry.
                self.tokens.invalidate(token)
                refreshed = True
                continue
            if response.status == 403:
                raise PermissionDeniedError(
                    "the Defender API refused the call (403): grant the app the Ip.Read.All application "
                    "permission (WindowsDefenderATP) with admin consent"
                )
            if response.status == 429:
                wait = parse_retry_after(response.headers.get("Retry-After")) or DEFAULT_RETRY_AFTER_SECONDS
                log.debug("429 from the API: every caller of this budget pauses %.1f s", wait)
                self.quota.pause(wait)
                throttled = True
                continue
            if self.policy.should_retry_status(response.status):
                failures += 1
                self._back_off(failures, deadline, "server_error", f"the Defender API kept failing (HTTP {response.status})")
                continue
            return response

    def _wait_for_permit(self, lane: str, deadline: float, code: str) -> str:
        """Sleep until the quota grants a permit and return its name; defer at once when that would pass the deadline."""
        permit = uuid.uuid4().hex
        while True:
            wait = self.quota.try_acquire(lane, permit)
            if wait <= 0:
                return permit
            if self.clock() + wait > deadline:
                raise CallDeferred(code, round(wait, 3))
            self.sleep(wait)

    def _back_off(self, failures: int, deadline: float, code: str, message: str) -> None:
        """Sleep before the next attempt, or fail when the attempts or the wait budget are spent."""
        if failures >= self.policy.max_attempts:
            raise CallFailed(code, f"{message} after {failures} attempts")
        delay = self.policy.backoff(failures, self.rng)
        if self.clock() + delay > deadline:
            raise CallFailed(code, f"{message}; no time left to retry")
        self.sleep(delay)

    def _send(self, url: str, params: dict, token: str, permit: str) -> Response:
        """One request with the bearer token, reading at most MAX_BODY_BYTES; settles the permit after."""
        try:
            with self.http.get(
                url,
                params=params,
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                stream=True,
            ) as raw:
                return Response(raw.status_code, _read_capped(raw), raw.headers)
        except requests.exceptions.SSLError:
            raise ServiceUnavailableError(
                "the Defender API failed TLS verification (check connection.ca_bundle)"
            ) from None
        finally:
            self.quota.settle(permit)


def _read_capped(raw: requests.Response) -> bytes:
    """The body, or its first MAX_BODY_BYTES + 1 bytes when it is larger (the caller rejects it)."""
    chunks, size = [], 0
    # Reading to the end (not raw.read) lets requests hand the connection back for reuse.
    for chunk in raw.iter_content(65536):
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            break
    return b"".join(chunks)


def shared_session(conn: Connection) -> DefenderSession:
    """The process-wide session for this connection; every session of one app + tenant shares one quota."""
    key = ("session", conn.budget_key, conn.credential.fingerprint(), conn.endpoints, conn.ca_bundle,
           conn.timeout_seconds, repr(conn.quota))
    return shared(key, lambda: DefenderSession(conn, quota=shared_quota(conn)))
