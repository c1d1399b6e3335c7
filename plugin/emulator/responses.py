"""Response values and the two error dialects the emulator speaks.

Defender's API errors: `{"error": {"code", "message", "target"}}` with a correlation id as
`target`. Entra's token errors: `{"error", "error_description": "AADSTSnnnn: ...",
"error_codes", "timestamp", "trace_id", "correlation_id", "error_uri"}`.
"""

from __future__ import annotations

import datetime as _dt
import json
import uuid
from dataclasses import dataclass, field

JSON = "application/json; charset=utf-8"
# What the live Defender API sends; clients must not insist on a bare "application/json".
ODATA_JSON = "application/json; odata.metadata=minimal; odata.streaming=true; charset=utf-8"

_DEFENDER_CODES = {
    400: "BadRequest", 401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
    405: "MethodNotAllowed", 429: "TooManyRequests", 500: "InternalServerError",
    502: "BadGateway", 503: "ServiceUnavailable", 504: "GatewayTimeout",
}


@dataclass
class Response:
    """What the handler writes: status, headers, body, a delay before writing, and a fault.

    `fault` is None (write the response), "reset" (abort the connection instead) or
    "reset_mid_body" (write the head and half the body, then abort the connection).
    """

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    fault: str | None = None


def json_response(status: int, payload: object, content_type: str = JSON, **headers: str) -> Response:
    """A JSON response with the given content type and extra headers."""
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    return Response(status, body, {"Content-Type": content_type, **headers})


def defender_error_payload(status: int, message: str, code: str | None = None) -> dict:
    """The body of a Defender API error: `{"error": {"code", "message", "target"}}`."""
    code = code or _DEFENDER_CODES.get(status, "Error")
    return {"error": {"code": code, "message": message, "target": str(uuid.uuid4())}}


def defender_error(status: int, message: str, code: str | None = None, **headers: str) -> Response:
    """A Defender API error body; the target doubles as the `request-id` header."""
    payload = defender_error_payload(status, message, code)
    return json_response(status, payload, ODATA_JSON, **{"request-id": payload["error"]["target"]}, **headers)


def entra_error(status: int, error: str, aadsts: int, text: str, correlation_id: str | None = None) -> Response:
    """An Entra ID token-endpoint error with its AADSTS code, trace and correlation ids."""
    payload = entra_error_payload(error, aadsts, text, correlation_id)
    return json_response(status, payload, **{"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})


def entra_error_payload(error: str, aadsts: int, text: str, correlation_id: str | None = None) -> dict:
    """The body of an Entra ID token-endpoint error (`error`, `error_description`, `error_codes`...)."""
    now = _dt.datetime.now(_dt.timezone.utc)
    trace_id = str(uuid.uuid4())
    correlation_id = correlation_id or str(uuid.uuid4())
    stamp = now.strftime("%Y-%m-%d %H:%M:%S") + "Z"
    description = (
        f"AADSTS{aadsts}: {text} Trace ID: {trace_id} Correlation ID: {correlation_id} Timestamp: {stamp}"
    )
    payload = {
        "error": error,
        "error_description": description,
        "error_codes": [aadsts],
        "timestamp": stamp,
        "trace_id": trace_id,
        "correlation_id": correlation_id,
        "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
    }
    return payload


def scripted(answer, default_error, default=None) -> Response:
    """Turn a staged Answer into a Response.

    `default_error(status)` supplies the body when the answer has none; `default()` is the
    route's default behaviour, used when the answer keeps the default status and body
    (`answer.is_default`). A "reset" fault answers nothing, so it never runs `default()`.
    """
    if answer.fault == "reset":
        return Response(0, delay=answer.wait, fault="reset")
    if answer.is_default and default is not None:
        response = default()
        response.delay += answer.wait
    else:
        if answer.body is None:
            response = default_error(answer.status)
        elif isinstance(answer.body, (dict, list)):
            response = json_response(answer.status, answer.body)
        else:
            raw = answer.body.encode("utf-8") if isinstance(answer.body, str) else bytes(answer.body)
            response = Response(answer.status, raw, {"Content-Type": JSON})
        response.status = answer.status
        response.delay = answer.wait
    for name, value in (answer.headers or {}).items():
        # Staged headers replace defaults whatever their case (one Content-Type, not two).
        response.headers = {k: v for k, v in response.headers.items() if k.lower() != name.lower()}
        response.headers[name] = value
    if answer.fault == "reset_mid_body":
        response.fault = "reset_mid_body"
    return response
