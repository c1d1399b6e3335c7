"""Endpoint resolution per cloud and the rules on where secrets and tokens may go."""

import pytest

from plugin.clouds import check_api_url, check_sign_in_url, resolve_endpoints
from plugin.errors import ConfigError


@pytest.mark.parametrize(
    "kwargs, api, authority, scope",
    [
        ({}, "https://api.security.microsoft.com", "https://login.microsoftonline.com",
         "https://api.securitycenter.microsoft.com/.default"),
        ({"region": "eu"}, "https://eu.api.security.microsoft.com", "https://login.microsoftonline.com",
         "https://api.securitycenter.microsoft.com/.default"),
        ({"cloud": "gcc"}, "https://api-gcc.securitycenter.microsoft.us", "https://login.microsoftonline.com",
         "https://api-gcc.securitycenter.microsoft.us/.default"),
        ({"cloud": "gcc_high"}, "https://api-gov.securitycenter.microsoft.us", "https://login.microsoftonline.us",
         "https://api-gov.securitycenter.microsoft.us/.default"),
        ({"cloud": "dod"}, "https://api-gov.securitycenter.microsoft.us", "https://login.microsoftonline.us",
         "https://api-gov.securitycenter.microsoft.us/.default"),
        ({"cloud": "dod", "scope": "https://custom/.default"}, "https://api-gov.securitycenter.microsoft.us",
         "https://login.microsoftonline.us", "https://custom/.default"),
        ({"api_base_url": "https://127.0.0.1:8443/", "authority_host": "https://localhost:8443"},
         "https://127.0.0.1:8443", "https://localhost:8443", "https://api.securitycenter.microsoft.com/.default"),
    ],
)
def test_each_cloud_resolves_to_its_documented_endpoints(kwargs, api, authority, scope):
    endpoints = resolve_endpoints(**kwargs)
    assert (endpoints.api_base_url, endpoints.authority_host, endpoints.scope) == (api, authority, scope)


@pytest.mark.parametrize("region_kwargs", [{"region": "mars"}, {"cloud": "gcc", "region": "eu"}])
def test_a_region_outside_the_global_cloud_list_is_refused(region_kwargs):
    with pytest.raises(ConfigError, match="connection.region"):
        resolve_endpoints(**region_kwargs)


SAFE_API = [
    "https://api.security.microsoft.com",
    "https://eu.api.security.microsoft.com",
    "https://api.securitycenter.microsoft.com",
    "https://api-gov.securitycenter.microsoft.us",
    "https://127.0.0.1:9443",
    "https://127.8.9.10",
    "https://localhost:1234",
    "https://[::1]:8443",
]
UNSAFE = [
    "http://api.security.microsoft.com",  # plain http
    "http://127.0.0.1:8080",  # plain http, even on loopback
    "https://api.security.microsoft.com.evil.example",  # suffix trick
    "https://evilsecurity.microsoft.com.example",
    "https://security.microsoft.com@evil.example",  # user info
    "https://evil.example/?x=.security.microsoft.com",
    "https://10.0.0.5",  # private, not loopback
    "https://0.0.0.0",
    "ftp://api.security.microsoft.com",
    "https://",
    "api.security.microsoft.com",
]


@pytest.mark.parametrize("url", SAFE_API)
def test_defender_and_loopback_hosts_may_receive_a_token(url):
    check_api_url(url, "connection.api_base_url")


@pytest.mark.parametrize("url", UNSAFE + ["https://login.microsoftonline.com"])
def test_any_other_api_url_is_refused_as_unsafe(url):
    with pytest.raises(ConfigError) as caught:
        check_api_url(url, "connection.api_base_url")
    assert caught.value.code == "unsafe_endpoint"
    assert "connection.api_base_url" in caught.value.message


@pytest.mark.parametrize("url", ["https://login.microsoftonline.com", "https://login.microsoftonline.us",
                                 "https://127.0.0.1:5000", "https://localhost"])
def test_microsoft_sign_in_and_loopback_hosts_may_receive_the_secret(url):
    check_sign_in_url(url, "connection.authority_host")


@pytest.mark.parametrize("url", UNSAFE + ["https://api.security.microsoft.com", "https://login.microsoftonline.com.evil.example",
                                          "https://login.microsoft.com"])
def test_any_other_sign_in_url_is_refused_as_unsafe(url):
    with pytest.raises(ConfigError) as caught:
        check_sign_in_url(url, "connection.authority_host")
    assert caught.value.code == "unsafe_endpoint"


def test_an_unsafe_override_is_refused_when_resolving():
    with pytest.raises(ConfigError) as caught:
        resolve_endpoints(api_base_url="https://collector.evil.example")
    assert caught.value.code == "unsafe_endpoint"
