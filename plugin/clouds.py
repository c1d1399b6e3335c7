"""The cloud table (API base, sign-in host, scope, portal) and the endpoint safety rules."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from plugin.errors import ConfigError


@dataclass(frozen=True)
class Cloud:
    """Where one Microsoft cloud keeps its Defender API, sign-in service and portal."""

    api_base_url: str
    authority_host: str
    scope: str
    portal_url: str


# Government scopes are not documented: they default to "<api host>/.default".
CLOUDS: dict[str, Cloud] = {
    "global": Cloud(
        api_base_url="https://api.security.microsoft.com",
        authority_host="https://login.microsoftonline.com",
        scope="https://api.securitycenter.microsoft.com/.default",
        portal_url="https://security.microsoft.com",
    ),
    "gcc": Cloud(
        api_base_url="https://api-gcc.securitycenter.microsoft.us",
        authority_host="https://login.microsoftonline.com",
        scope="https://api-gcc.securitycenter.microsoft.us/.default",
        portal_url="https://security.microsoft.com",
    ),
    "gcc_high": Cloud(
        api_base_url="https://api-gov.securitycenter.microsoft.us",
        authority_host="https://login.microsoftonline.us",
        scope="https://api-gov.securitycenter.microsoft.us/.default",
        portal_url="https://security.microsoft.us",
    ),
    "dod": Cloud(
        api_base_url="https://api-gov.securitycenter.microsoft.us",
        authority_host="https://login.microsoftonline.us",
        scope="https://api-gov.securitycenter.microsoft.us/.default",
        portal_url="https://security.apps.mil",
    ),
}

REGIONS = ("us", "eu", "uk", "au", "swa", "ina", "aea")

SIGN_IN_HOSTS = ("login.microsoftonline.com", "login.microsoftonline.us")
API_HOST_SUFFIXES = (".security.microsoft.com", ".securitycenter.microsoft.com", ".securitycenter.microsoft.us")


@dataclass(frozen=True)
class Endpoints:
    """The resolved, checked endpoints of one connection."""

    cloud: str
    api_base_url: str
    authority_host: str
    scope: str
    portal_url: str


def resolve_endpoints(
    cloud: str = "global",
    region: str | None = None,
    api_base_url: str | None = None,
    authority_host: str | None = None,
    scope: str | None = None,
) -> Endpoints:
    """Pick the cloud's endpoints, apply region and overrides, and refuse unsafe hosts."""
    if cloud not in CLOUDS:
        raise ConfigError(f"connection.cloud: must be one of {', '.join(CLOUDS)}")
    base = CLOUDS[cloud]
    api = base.api_base_url
    if region:
        if cloud != "global" or region not in REGIONS:
            raise ConfigError(f"connection.region: only for the global cloud, one of {', '.join(REGIONS)}")
        api = f"https://{region}.api.security.microsoft.com"
    api = (api_base_url or api).rstrip("/")
    authority = (authority_host or base.authority_host).rstrip("/")
    check_api_url(api, "connection.api_base_url")
    check_sign_in_url(authority, "connection.authority_host")
    # The scope names the resource, not the host we call, so a regional or overridden API base
    # keeps its cloud's scope unless `scope` itself is overridden.
    return Endpoints(cloud, api, authority, scope or base.scope, base.portal_url)


def is_loopback_host(host: str) -> bool:
    """True for localhost, 127.0.0.0/8 and ::1 (where the emulator lives)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_sign_in_url(url: str, field: str) -> None:
    """Refuse a URL the client secret must not be sent to."""
    host = _https_host(url, field)
    if host not in SIGN_IN_HOSTS and not is_loopback_host(host):
        raise ConfigError(f"{field}: not a Microsoft sign-in host or loopback", code="unsafe_endpoint")


def check_api_url(url: str, field: str) -> None:
    """Refuse a URL a bearer token must not be sent to."""
    host = _https_host(url, field)
    if not host.endswith(API_HOST_SUFFIXES) and not is_loopback_host(host):
        raise ConfigError(f"{field}: not a Microsoft Defender API host or loopback", code="unsafe_endpoint")


def _https_host(url: str, field: str) -> str:
    """The lower-case host of an https URL with no user info; anything else is unsafe."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        raise ConfigError(f"{field}: not a valid URL", code="unsafe_endpoint") from None
    if parts.scheme != "https":
        raise ConfigError(f"{field}: must be an https:// URL", code="unsafe_endpoint")
    if not host or "@" in parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"{field}: must name a host, with no user info, query or fragment", code="unsafe_endpoint")
    return host
