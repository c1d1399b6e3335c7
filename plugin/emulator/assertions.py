"""Verification of certificate credentials: JWT client assertions (RFC 7523) like Entra's.

Accepted: RS256 and PS256 signed by a registered certificate's key. The certificate is
found by the `x5t#S256` (SHA-256) or `x5t` (SHA-1) thumbprint header; failing that, an
`x5c` header whose leaf has the subject and issuer of a registered certificate is accepted
(subject name / issuer auth, which is how a rotated certificate keeps working) and that
leaf's key verifies the signature. Claims: `aud` is the token endpoint, `iss` and `sub`
are the client id, `exp` is in the future and `nbf` (if any) at most 5 minutes ahead.
"""

from __future__ import annotations

import base64
import json
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from plugin.emulator.certs import b64url_thumbprints, certificate_from_x5c

_SKEW = 300  # Entra tolerates about five minutes of clock skew on nbf.


class AssertionRejected(Exception):
    """The assertion is unacceptable; carries Entra's AADSTS code and text."""

    def __init__(self, aadsts: int, text: str):
        super().__init__(text)
        self.aadsts = aadsts
        self.text = text


def _b64url(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _split(assertion: str) -> tuple[dict, dict, bytes, bytes]:
    try:
        head, body, sig = assertion.split(".")
        header, claims = json.loads(_b64url(head)), json.loads(_b64url(body))
        signature = _b64url(sig)
    except (ValueError, TypeError) as exc:
        raise AssertionRejected(50027, "JWT token is invalid or malformed.") from exc
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRejected(50027, "JWT token is invalid or malformed.")
    return header, claims, signature, f"{head}.{body}".encode("ascii")


def _find_certificate(header: dict, registered: list[x509.Certificate]) -> x509.Certificate:
    s256 = str(header.get("x5t#S256", "")).rstrip("=")
    s1 = str(header.get("x5t", "")).rstrip("=")
    for cert in registered:
        cert_s256, cert_s1 = b64url_thumbprints(cert)
        if (s256 and s256 == cert_s256) or (s1 and s1 == cert_s1):
            return cert
    leaf = certificate_from_x5c(header.get("x5c"))
    if leaf is not None:
        for cert in registered:
            if (leaf.subject, leaf.issuer) == (cert.subject, cert.issuer):
                return leaf
    raise AssertionRejected(
        700027,
        "The certificate with identifier used to sign the client assertion is not registered on application.",
    )


def _verify_signature(alg: object, cert: x509.Certificate, signature: bytes, signed: bytes) -> None:
    key = cert.public_key()
    if not isinstance(key, rsa.RSAPublicKey) or alg not in ("RS256", "PS256"):
        raise AssertionRejected(5002738, "Invalid JWT token. Only RS256 and PS256 with an RSA certificate are supported.")
    pad = (
        padding.PKCS1v15()
        if alg == "RS256"
        else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)
    )
    try:
        key.verify(signature, signed, pad, hashes.SHA256())
    except InvalidSignature as exc:
        raise AssertionRejected(700027, "Client assertion failed signature validation.") from exc


def _check_claims(claims: dict, client_id: str, audiences: set[str], now: float) -> None:
    aud = claims.get("aud")
    auds = aud if isinstance(aud, list) else [aud]
    if not any(isinstance(a, str) and a.rstrip("/").lower() in audiences for a in auds):
        raise AssertionRejected(700212, "No matching federated identity record found for presented assertion audience.")
    if claims.get("iss") != client_id or claims.get("sub") != client_id:
        raise AssertionRejected(700023, "Client assertion issuer and subject must both be the client id.")
    exp, nbf = claims.get("exp"), claims.get("nbf")
    if not isinstance(exp, (int, float)) or exp <= now:
        raise AssertionRejected(700024, "Client assertion is not within its valid time range.")
    if isinstance(nbf, (int, float)) and nbf - _SKEW > now:
        raise AssertionRejected(700024, "Client assertion is not within its valid time range.")


def verify_assertion(
    assertion: str,
    *,
    client_id: str,
    audiences: set[str],
    registered: list[x509.Certificate],
    now: float | None = None,
) -> None:
    """Raise AssertionRejected unless the assertion proves possession of a registered certificate.

    `audiences` are accepted `aud` values, lower-cased and without a trailing slash.
    """
    header, claims, signature, signed = _split(assertion)
    cert = _find_certificate(header, registered)
    _verify_signature(header.get("alg"), cert, signature, signed)
    _check_claims(claims, client_id, audiences, time.time() if now is None else now)
