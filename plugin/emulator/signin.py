"""The Entra ID side of the emulator: OpenID discovery and the client-credentials token endpoint.

Only what a daemon app needs: `GET /{tenant}/v2.0/.well-known/openid-configuration` and
`POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`, a single scope
ending in `/.default`, and a client secret or a certificate (JWT client assertion).
Errors carry Entra's shape and AADSTS codes; the common ones are the real codes
(90002 unknown tenant, 700016 unknown app, 7000215 wrong secret, 700027 bad assertion).
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field
from typing import Callable

from cryptography import x509

from plugin.emulator.assertions import AssertionRejected, verify_assertion
from plugin.emulator.responses import Response, entra_error, json_response
from plugin.emulator.tokens import TokenStore

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_RESERVED_SCOPES = {"openid", "profile", "offline_access", "email"}


@dataclass
class App:
    """The one app registration the emulator knows: id, secret and certificates."""

    client_id: str
    client_secret: str | None
    certificates: list[x509.Certificate] = field(default_factory=list)


class SignIn:
    """Discovery documents and token issuance for one tenant and one app."""

    def __init__(
        self,
        tenant_id: str,
        app: App,
        tokens: TokenStore,
        lifetime: Callable[[], float],
        roles: Callable[[], frozenset[str]],
    ):
        self.tenant_id = tenant_id
        self.app = app
        self._tokens = tokens
        self._lifetime = lifetime
        self._roles = roles
        self._lock = threading.Lock()

    def register_certificate(self, cert: x509.Certificate) -> None:
        """Add a certificate credential to the app registration."""
        with self._lock:
            self.app.certificates.append(cert)

    def knows_tenant(self, tenant: str) -> bool:
        """True when `tenant` names the emulated tenant (case-insensitive, like Entra)."""
        return tenant.lower() == self.tenant_id.lower()

    def discovery(self, base: str, tenant: str) -> Response:
        """The OpenID configuration of the tenant, or Entra's 400 for an unknown one."""
        if not self.knows_tenant(tenant):
            return _unknown_tenant(tenant, None, error="invalid_tenant")
        root = f"{base}/{self.tenant_id}"
        return json_response(200, {
            "token_endpoint": f"{root}/oauth2/v2.0/token",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "jwks_uri": f"{root}/discovery/v2.0/keys",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": f"{root}/v2.0",
            "request_uri_parameter_supported": False,
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode",
            "end_session_endpoint": f"{root}/oauth2/v2.0/logout",
            "tenant_region_scope": "EU",
            "cloud_instance_name": "emulator.invalid",
        }, **{"Cache-Control": "max-age=86400, private"})

    def token(self, base: str, tenant: str, form: dict[str, str], correlation_id: str | None) -> Response:
        """Answer one token request: an access token, or the error Entra would give."""
        rejection = self._reject(base, tenant, form, correlation_id)
        if rejection is not None:
            return rejection
        lifetime = self._lifetime()
        token = self._tokens.issue(self.app.client_id, self.tenant_id, self._roles(), lifetime)
        payload = {"token_type": "Bearer", "expires_in": int(lifetime), "ext_expires_in": int(lifetime),
                   "access_token": token}
        return json_response(200, payload, **{"Cache-Control": "no-store, no-cache", "Pragma": "no-cache"})

    def _reject(self, base: str, tenant: str, form: dict[str, str], cid: str | None) -> Response | None:
        if not self.knows_tenant(tenant):
            return _unknown_tenant(tenant, cid)
        for name in ("grant_type", "client_id", "scope"):
            if not form.get(name):
                return entra_error(400, "invalid_request", 900144,
                                   f"The request body must contain the following parameter: '{name}'.", cid)
        if form["grant_type"] != "client_credentials":
            return entra_error(400, "unsupported_grant_type", 70003,
                               "The app requested an unsupported grant type.", cid)
        client_id = form["client_id"]
        if client_id.lower() != self.app.client_id.lower():
            return entra_error(400, "unauthorized_client", 700016, (
                f"Application with identifier '{client_id}' was not found in the directory '{tenant}'. "
                "This can happen if the application has not been installed by the administrator of the "
                "tenant or consented to by any user in the tenant. You may have sent your authentication "
                "request to the wrong tenant."), cid)
        scopes = [s for s in form["scope"].split() if s.lower() not in _RESERVED_SCOPES]
        if len(scopes) != 1 or not scopes[0].endswith("/.default"):
            return entra_error(400, "invalid_scope", 1002012, (
                "The provided value for scope is not valid. Client credential flows must have a scope "
                "value with /.default suffixed to the resource identifier (application ID URI)."), cid)
        return self._check_credential(base, tenant, form, cid)

    def _check_credential(self, base: str, tenant: str, form: dict[str, str], cid: str | None) -> Response | None:
        if form.get("client_assertion"):
            return self._check_assertion(base, tenant, form, cid)
        if form.get("client_secret") is not None:
            expected = self.app.client_secret
            if expected is not None and hmac.compare_digest(form["client_secret"].encode(), expected.encode()):
                return None
            return entra_error(401, "invalid_client", 7000215, (
                "Invalid client secret provided. Ensure the secret being sent in the request is the client "
                f"secret value, not the client secret ID, for a secret added to app '{self.app.client_id}'."), cid)
        return entra_error(401, "invalid_client", 7000218, (
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."), cid)

    def _check_assertion(self, base: str, tenant: str, form: dict[str, str], cid: str | None) -> Response | None:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            return entra_error(400, "invalid_request", 700025, (
                f"The client_assertion_type must be '{ASSERTION_TYPE}'."), cid)
        audiences = {
            f"{base}/{t}/oauth2/v2.0/token".lower() for t in (tenant, self.tenant_id)
        } | {f"{base}/{self.tenant_id}/v2.0".lower()}
        with self._lock:
            registered = list(self.app.certificates)
        try:
            verify_assertion(form["client_assertion"], client_id=self.app.client_id,
                             audiences=audiences, registered=registered)
        except AssertionRejected as exc:
            return entra_error(401, "invalid_client", exc.aadsts, exc.text, cid)
        return None


def _unknown_tenant(tenant: str, cid: str | None, error: str = "invalid_request") -> Response:
    return entra_error(400, error, 90002, (
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing "
        "into the correct cloud. Check with your subscription administrator, this may happen if there are "
        "no active subscriptions for the tenant."), cid)
