"""HTTP sessions pinned to one origin, with our CA bundle, proxy and timeout on every request."""

from __future__ import annotations

from urllib.parse import urlsplit

import requests

from plugin.config import Connection


class PinnedSession(requests.Session):
    """A requests session that only talks to one https origin and never follows redirects.

    Why: the client secret and bearer tokens must reach only the host they were configured
    for; a redirect (a 307 re-posts the body) or a discovery document naming another host
    must not carry them elsewhere.
    """

    def __init__(self, origin: str, *, ca_bundle: str | None, proxy: str | None, timeout: float):
        super().__init__()
        self.origin = _origin(origin)
        self.ca_bundle = ca_bundle
        self.default_timeout = timeout
        if proxy:
            self.proxies = {"https": proxy, "http": proxy}

    def request(self, method, url, *args, **kwargs):
        """Send one request after checking its origin; timeout and no-redirect always apply."""
        if _origin(url) != self.origin:
            raise UnexpectedOriginError(f"refused a request to {_origin(url)}: only {self.origin} is allowed")
        kwargs["allow_redirects"] = False
        # MSAL ignores its own timeout once it is given an http client: the client sets it.
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        """Keep env proxies, but let our CA bundle win over REQUESTS_CA_BUNDLE; never verify=False."""
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if self.ca_bundle:
            settings["verify"] = self.ca_bundle
        elif settings.get("verify") is False:
            settings["verify"] = True
        return settings


class UnexpectedOriginError(requests.exceptions.InvalidURL):
    """A request aimed at an origin other than the one the session is pinned to."""


def sign_in_session(conn: Connection) -> PinnedSession:
    """The session MSAL uses: pinned to the configured sign-in host."""
    return _session(conn.endpoints.authority_host, conn)


def api_session(conn: Connection) -> PinnedSession:
    """The session the Defender client uses: pinned to the configured API host."""
    return _session(conn.endpoints.api_base_url, conn)


def _session(origin: str, conn: Connection) -> PinnedSession:
    return PinnedSession(origin, ca_bundle=conn.ca_bundle, proxy=conn.proxy, timeout=conn.timeout_seconds)


def _origin(url: str) -> str:
    """scheme://host:port in lower case, with the default port made explicit."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{(parts.hostname or '').lower()}:{port}"
