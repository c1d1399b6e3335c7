"""The Defender for Endpoint side: `GET /api/ips/{ip}/stats`.

Order of checks for a request without a staged answer: bearer token (401), rate limits
of the token's app + tenant (429; only calls that get past this point are counted, so
403, 400 and 404 answers use quota like on the live service), the `Ip.Read.All` role
(403), `lookBackHours` (400 InvalidRequestBody), the IP (400 InvalidIpAddress), then the
deterministic data of `plugin.emulator.data` (404 NotFound or 200). Staged answers sit
between the bearer check and the rest (see `core`).
"""

from __future__ import annotations

import datetime as _dt
import re
from urllib.parse import unquote

from plugin.emulator.data import parse_ip, stats_for
from plugin.emulator.limits import SlidingWindows, retry_after_header
from plugin.emulator.responses import ODATA_JSON, Response, defender_error, json_response
from plugin.emulator.tokens import Grant, TokenStore

REQUIRED_ROLE = "Ip.Read.All"
_MAX_LOOK_BACK = 720
_DIGITS = re.compile(r"[0-9]{1,6}")


def bearer_grant(authorization: str | None, tokens: TokenStore) -> tuple[Grant | None, Response | None]:
    """(grant, None) for a live bearer token, else (None, the 401 Defender would send)."""
    scheme, _, token = (authorization or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None, _unauthorized("Authorization header is missing or is not a bearer token.")
    grant, why = tokens.check(token.strip())
    if grant is None:
        text = "The access token has expired." if why == "expired" else "The access token is invalid."
        return None, _unauthorized(text)
    return grant, None


def _unauthorized(message: str) -> Response:
    return defender_error(401, message, **{"WWW-Authenticate": 'Bearer error="invalid_token"'})


def default_error(status: int) -> Response:
    """A plausible Defender error for a staged status without a body (a 401 is the real one)."""
    if status == 401:
        return _unauthorized("The access token is invalid.")
    return defender_error(status, f"The service answered {status} (staged by the emulator).")


def _look_back(query: dict[str, str]) -> int | None | Response:
    for name, value in query.items():
        if name.lower() == "lookbackhours":
            if not _DIGITS.fullmatch(value) or not 1 <= int(value) <= _MAX_LOOK_BACK:
                return defender_error(400, f"lookBackHours must be an integer from 1 to {_MAX_LOOK_BACK}.",
                                      "InvalidRequestBody")
            return int(value)
    return None


def stats(
    segment: str,
    query: dict[str, str],
    grant: Grant,
    limiter: SlidingWindows,
    base: str,
    reference: _dt.datetime | None,
) -> Response:
    """The default answer of the stats route for a request that carries a live token."""
    wait = limiter.admit((grant.client_id.lower(), grant.tenant.lower()))
    if wait is not None:
        seconds = retry_after_header(wait)
        return defender_error(429, f"Rate limit is exceeded. Try again in {seconds} seconds.",
                              **{"Retry-After": seconds})
    if REQUIRED_ROLE not in grant.roles:
        return defender_error(403, (
            f"The application does not have any of the required application permissions ({REQUIRED_ROLE}) "
            "to access the resource."))
    look_back = _look_back(query)
    if isinstance(look_back, Response):
        return look_back
    text = unquote(segment)
    ip = parse_ip(text)
    if ip is None:
        return defender_error(400, "The IP address is not valid.", "InvalidIpAddress")
    found = stats_for(ip, reference)
    if not found.found:
        return defender_error(404, "The IP address was not found.", "NotFound")
    return json_response(200, {
        "@odata.context": f"{base}/api/$metadata#microsoft.windowsDefenderATP.api.InOrgIPStats",
        "ipAddress": text,
        "orgPrevalence": str(found.prevalence),
        "organizationPrevalence": found.prevalence,
        "orgFirstSeen": found.first_seen,
        "orgLastSeen": found.last_seen,
    }, ODATA_JSON)
