"""Ready-made faulty answers for `Emulator.script*` and a port that refuses connections.

Stats route::

    emu.script_all_forever(faults.server_error(503))        # every call 503 until clear_scripts()
    emu.script_all([faults.throttled()] * 10)               # a 429 storm without Retry-After
    emu.script("8.8.8.8", [faults.throttled("86400")])      # an absurd Retry-After (a day)
    emu.script("8.8.8.8", [faults.reset_mid_body()])        # requests: ChunkedEncodingError
    emu.script_all_forever(faults.persistent_unauthorized())  # a 401 that persists

Token endpoint::

    emu.script_token([faults.token_expired_secret()])       # 401 invalid_client AADSTS7000222
    emu.script_token([faults.stall(2)])                     # a read timeout for a client < 2 s

What `requests` (2.x, urllib3 2.x, no retries) raises for each transport fault:
`reset()` -> `requests.exceptions.ConnectionError` (from ConnectionResetError / RemoteDisconnected),
`reset_mid_body()` -> `requests.exceptions.ChunkedEncodingError` (a subclass of
`RequestException`, NOT of `ConnectionError`), `stall(s)` with `timeout < s` ->
`requests.exceptions.ReadTimeout`, `refused_base_url()` -> `requests.exceptions.ConnectionError`.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager

from plugin.emulator.core import DEFAULT_CLIENT_ID
from plugin.emulator.responses import ODATA_JSON, defender_error_payload, entra_error_payload
from plugin.emulator.scripting import Answer

_NO_STORE = {"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"}
_STATS_PREFIX = {
    "@odata.context": "https://api.securitycenter.microsoft.com/api/$metadata#microsoft.windowsDefenderATP.api.InOrgIPStats",
    "ipAddress": "10.209.67.177",
    "orgPrevalence": "63515",
    "organizationPrevalence": 63515,
    "orgFirstSeen": "2017-07-30T13:36:06Z",
    "orgLastSeen": "2017-08-29T13:32:59Z",
}


# ----- transport -----------------------------------------------------------------------------


def reset(delay: float = 0.0) -> Answer:
    """Read the request, then abort the connection (RST) without any response. Recorded status 0."""
    return Answer(fault="reset", delay=delay)


def reset_mid_body(status: int = 200, body: dict | str | bytes | None = None) -> Answer:
    """Send the head (Content-Length of the whole body) and half the body, then abort.

    Without a body the route's default response is cut (for a 200 on the stats route:
    the IP's real stats). Recorded status 0.
    """
    return Answer(status=status, body=body, fault="reset_mid_body")


def stall(seconds: float | None = None) -> Answer:
    """Answer (with the default behaviour) only after `seconds`; None: not until `stop()`.

    A client whose read timeout is shorter sees a read timeout; `stop()` ends the stall at once.
    """
    return Answer(fault="stall", delay=seconds or 0.0)


@contextmanager
def refused_base_url(host: str = "127.0.0.1") -> Iterator[str]:
    """An `https://host:port` URL whose port refuses connections (bound, never listening).

    The socket stays bound while the context is open, so no other process can take the port.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.bind((host, 0))
        shown = f"[{host}]" if ":" in host else host
        yield f"https://{shown}:{sock.getsockname()[1]}"
    finally:
        sock.close()


# ----- stats route ---------------------------------------------------------------------------


def throttled(retry_after: str | int | None = None) -> Answer:
    """429 TooManyRequests with Defender's error body; `Retry-After` only if given (e.g. "86400")."""
    seconds = f" Try again in {retry_after} seconds." if retry_after is not None else ""
    body = defender_error_payload(429, f"Rate limit is exceeded.{seconds}")
    headers = {"Content-Type": ODATA_JSON}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Answer(status=429, body=body, headers=headers)


def server_error(status: int = 500) -> Answer:
    """A 5xx (500, 502, 503, 504...) with Defender's error body."""
    if not 500 <= status <= 599:
        raise ValueError("server_error takes a 5xx status")
    return Answer(status=status)


def persistent_unauthorized() -> Answer:
    """A Defender 401 (`WWW-Authenticate: Bearer error="invalid_token"`); with `script_all_forever`,
    every stats call gets it whatever token it carries, fresh ones included."""
    return Answer(status=401)


def html_error_page(status: int = 502) -> Answer:
    """An HTML error page like a reverse proxy's (nginx), Content-Type text/html."""
    reasons = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Temporarily Unavailable",
               504: "Gateway Time-out", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests"}
    title = f"{status} {reasons.get(status, 'Error')}"
    page = (f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n"
            "<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    return Answer(status=status, body=page, headers={"Content-Type": "text/html", "Server": "nginx"})


def truncated_json() -> Answer:
    """200, Defender's JSON content type, a body cut in the middle of the object."""
    whole = json.dumps(_STATS_PREFIX, separators=(",", ":"))
    cut = whole[: whole.index('"organizationPrevalence":') + len('"organizationPrevalence":635')]
    return Answer(status=200, body=cut, headers={"Content-Type": ODATA_JSON})


def huge_body(megabytes: float = 3, complete: bool = True) -> Answer:
    """200 with a stats object padded to about `megabytes` MiB: the real fields come first,
    then a `"padding"` string. `complete=False` drops the closing `"}` (a prefix only)."""
    head = json.dumps(_STATS_PREFIX, separators=(",", ":"))[:-1] + ',"padding":"'
    size = max(int(megabytes * (1 << 20)), len(head) + 2)
    body = head + "x" * (size - len(head) - 2) + ('"}' if complete else "")
    return Answer(status=200, body=body.encode("ascii"), headers={"Content-Type": ODATA_JSON})


def wrong_content_type() -> Answer:
    """200 with `text/plain` and the body `OK`."""
    return Answer(status=200, body="OK", headers={"Content-Type": "text/plain; charset=utf-8"})


# ----- token endpoint ------------------------------------------------------------------------


def token_invalid_client(client_id: str = DEFAULT_CLIENT_ID) -> Answer:
    """401 invalid_client AADSTS7000215 (wrong secret), whatever the request sent."""
    return Answer(status=401, headers=dict(_NO_STORE), body=entra_error_payload("invalid_client", 7000215, (
        "Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
        f"value, not the client secret ID, for a secret added to app '{client_id}'.")))


def token_expired_secret(client_id: str = DEFAULT_CLIENT_ID) -> Answer:
    """401 invalid_client AADSTS7000222: the client secret has expired."""
    return Answer(status=401, headers=dict(_NO_STORE), body=entra_error_payload("invalid_client", 7000222, (
        f"The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create "
        "new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for "
        "added security: https://aka.ms/certCreds.")))


def token_invalid_json() -> Answer:
    """200, application/json, a token response cut short (not valid JSON)."""
    return Answer(status=200, body='{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_tok',
                  headers={"Content-Type": "application/json; charset=utf-8", **_NO_STORE})


def token_server_error(status: int = 500) -> Answer:
    """A 5xx from the token endpoint with Entra's `server_error` body (AADSTS50000)."""
    if not 500 <= status <= 599:
        raise ValueError("token_server_error takes a 5xx status")
    return Answer(status=status, headers=dict(_NO_STORE), body=entra_error_payload("server_error", 50000, (
        "There was an error issuing a token or an issue with our sign-in service.")))


__all__ = [
    "html_error_page", "huge_body", "persistent_unauthorized", "refused_base_url", "reset", "reset_mid_body",
    "server_error", "stall", "throttled", "token_expired_secret", "token_invalid_client", "token_invalid_json",
    "token_server_error", "truncated_json", "wrong_content_type",
]
