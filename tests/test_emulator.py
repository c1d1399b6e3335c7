"""The offline emulator: real HTTPS, real MSAL, the documented data, limits, faults and staging."""

from __future__ import annotations

import datetime as dt
import http.client
import ipaddress
import json
import logging
import os
import ssl
import stat
import threading
import time

import msal
import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from plugin.emulator import DEFAULT_SCOPE, Answer, Emulator, faults
from plugin.emulator.data import stats_for
from plugin.emulator.limits import SlidingWindows
from plugin.emulator.serve import write_connection


# ----- helpers --------------------------------------------------------------------------------


def _session(emu: Emulator) -> requests.Session:
    # trust_env False: REQUESTS_CA_BUNDLE in the environment would override `verify`.
    session = requests.Session()
    session.trust_env = False
    session.verify = emu.ca_path
    return session


def _token(emu: Emulator, session: requests.Session | None = None) -> str:
    session = session or _session(emu)
    reply = session.post(f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": emu.client_id,
        "client_secret": emu.client_secret, "scope": DEFAULT_SCOPE,
    })
    assert reply.status_code == 200, reply.text
    return reply.json()["access_token"]


def _stats(emu: Emulator, ip: str, token: str | None, session=None, **params) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return (session or _session(emu)).get(f"{emu.base_url}/api/ips/{ip}/stats", headers=headers, params=params)


def _msal_app(emu: Emulator, credential, tenant: str | None = None) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        emu.client_id, client_credential=credential,
        authority=f"{emu.base_url}/{tenant or emu.tenant_id}",
        instance_discovery=False, http_client=_session(emu),
    )


def _rsa_cert(common_name: str = "enrich-ip app", key=None):
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode(), cert


@pytest.fixture(scope="module")
def emu():
    with Emulator() as shared:
        yield shared


@pytest.fixture(scope="module")
def token(emu):
    return _token(emu)


@pytest.fixture(scope="module")
def rsa_cert():
    return _rsa_cert()


# ----- lifecycle and TLS ----------------------------------------------------------------------


def test_starts_fast_on_loopback_and_cleans_up():
    started = time.perf_counter()
    emu = Emulator().start()
    try:
        assert time.perf_counter() - started < 0.3
        assert emu.base_url == f"https://127.0.0.1:{emu.port}" and emu.port > 0
        assert os.path.isfile(emu.ca_path)
        assert emu.client_secret not in repr(emu)
    finally:
        emu.stop()
    assert not os.path.exists(emu.ca_path)


def test_tls_is_verified_against_the_emulator_ca_only(emu):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{emu.base_url}/x", verify=True)  # the system store does not know our CA
    assert requests.get(f"{emu.base_url}/x", verify=emu.ca_path).status_code == 404


def test_keep_alive_serves_several_requests_on_one_connection(emu, token):
    context = ssl.create_default_context(cafile=emu.ca_path)
    conn = http.client.HTTPSConnection("127.0.0.1", emu.port, context=context, timeout=5)
    try:
        for _ in range(3):  # http.client never reconnects by itself, so this proves keep-alive
            conn.request("GET", "/api/ips/10.209.67.177/stats", headers={"Authorization": f"Bearer {token}"})
            reply = conn.getresponse()
            assert reply.status == 200 and json.loads(reply.read())["organizationPrevalence"] == 63515
    finally:
        conn.close()


def test_connection_dict_points_at_the_emulator(emu):
    conn = emu.connection()
    assert conn["api_base_url"] == conn["authority_host"] == emu.base_url
    assert conn["ca_bundle"] == emu.ca_path and conn["scope"] == DEFAULT_SCOPE
    assert (conn["tenant_id"], conn["client_id"], conn["client_secret"]) == (
        emu.tenant_id, emu.client_id, emu.client_secret)
    assert emu.connection(timeout_seconds=5)["timeout_seconds"] == 5


def test_connection_file_is_private(tmp_path, emu):
    path = tmp_path / "conn.json"
    path.write_text("{}")
    os.chmod(path, 0o644)
    write_connection(str(path), emu.connection())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(path.read_text())["client_secret"] == emu.client_secret


# ----- data -----------------------------------------------------------------------------------


def test_documented_ip_answers_exactly_as_documented(emu, token):
    reply = _stats(emu, "10.209.67.177", token)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.json() == {
        "@odata.context": f"{emu.base_url}/api/$metadata#microsoft.windowsDefenderATP.api.InOrgIPStats",
        "ipAddress": "10.209.67.177",
        "orgPrevalence": "63515",
        "organizationPrevalence": 63515,
        "orgFirstSeen": "2017-07-30T13:36:06Z",
        "orgLastSeen": "2017-08-29T13:32:59Z",
    }


def test_test_net_1_is_the_older_404_never_seen(emu, token):
    reply = _stats(emu, "192.0.2.44", token)
    assert reply.status_code == 404 and reply.json()["error"]["code"] == "NotFound"


def test_test_net_2_is_the_current_never_seen(emu, token):
    body = _stats(emu, "198.51.100.7", token).json()
    assert (body["organizationPrevalence"], body["orgPrevalence"]) == (0, "0")
    assert body["orgFirstSeen"] is None and body["orgLastSeen"] is None


def test_test_net_3_is_always_rare(emu, token):
    for last in (1, 77, 254):
        body = _stats(emu, f"203.0.113.{last}", token).json()
        assert 1 <= body["organizationPrevalence"] <= 10 and body["orgFirstSeen"] <= body["orgLastSeen"]


def test_other_ips_are_deterministic_and_varied():
    ips = [ipaddress.ip_address(0x0B000000 + i * 7919) for i in range(2000)]
    answers = [stats_for(ip) for ip in ips]
    assert answers == [stats_for(ip) for ip in ips]
    never = sum(1 for a in answers if a.prevalence == 0)
    assert 0.15 < never / len(ips) < 0.25
    assert all(a.first_seen is None and a.last_seen is None for a in answers if a.prevalence == 0)
    seen = [a for a in answers if a.prevalence]
    assert all(1 <= a.prevalence <= 100_000 and a.first_seen[:19] < a.last_seen[:19] for a in seen)
    assert any(len(a.first_seen) == len("2026-11-20T08:15:42.1234567Z") for a in seen)
    assert any(a.prevalence > 10_000 for a in seen) and any(a.prevalence <= 10 for a in seen)
    assert stats_for(ipaddress.ip_address("::ffff:10.209.67.177")).prevalence == 63515


@pytest.mark.parametrize("ip", ["not-an-ip", "fe80::1%25eth0", "10.0.0.0%2F8", "1.2.3.4:80"])
def test_invalid_ip_is_400(emu, token, ip):
    reply = _stats(emu, ip, token)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "InvalidIpAddress"


@pytest.mark.parametrize("hours", ["0", "721", "abc", "-1", ""])
def test_look_back_hours_out_of_range_is_400(emu, token, hours):
    reply = _stats(emu, "10.209.67.177", token, lookBackHours=hours)
    assert reply.status_code == 400 and reply.json()["error"]["code"] == "InvalidRequestBody"


def test_requests_are_recorded_raw(emu, token):
    _stats(emu, "fe80::1%25eth0", token, lookBackHours=24)
    seen = emu.stats_calls("fe80::1%eth0")[-1]
    assert (seen.method, seen.path, seen.query, seen.status, seen.kind) == (
        "GET", "/api/ips/fe80::1%25eth0/stats", {"lookBackHours": "24"}, 400, "stats")
    assert emu.stats_calls("fe80::1%25eth0")[-1] == seen


# ----- bearer, roles, limits ------------------------------------------------------------------


def test_missing_or_unknown_token_is_401(emu):
    for token in (None, "not-a-token"):
        reply = _stats(emu, "10.209.67.177", token)
        assert reply.status_code == 401
        error = reply.json()["error"]
        assert error["code"] == "Unauthorized" and error["target"]


def test_revoked_and_expired_tokens_are_401():
    with Emulator(token_lifetime_seconds=0.3) as emu:
        session = _session(emu)
        token = _token(emu, session)
        assert _stats(emu, "10.209.67.177", token, session).status_code == 200
        time.sleep(0.35)
        assert "expired" in _stats(emu, "10.209.67.177", token, session).json()["error"]["message"]
        fresh = _token(emu, session)
        emu.revoke_tokens()
        assert _stats(emu, "10.209.67.177", fresh, session).status_code == 401


def test_missing_role_is_403():
    with Emulator(roles=set()) as emu:
        reply = _stats(emu, "10.209.67.177", _token(emu))
        assert reply.status_code == 403
        assert reply.json()["error"]["code"] == "Forbidden" and "Ip.Read.All" in reply.json()["error"]["message"]
        emu.set_roles({"Ip.Read.All"})
        assert _stats(emu, "10.209.67.177", _token(emu)).status_code == 200


def test_limits_answer_429_with_retry_after_then_recover():
    with Emulator(limits=[(3, 1)]) as emu:
        session = _session(emu)
        token = _token(emu, session)
        statuses = [_stats(emu, "8.8.8.8", token, session).status_code for _ in range(3)]
        throttled = _stats(emu, "8.8.8.8", token, session)
        assert statuses == [200, 200, 200] and throttled.status_code == 429
        assert throttled.headers["Retry-After"] == "1"
        assert throttled.json()["error"]["code"] == "TooManyRequests"
        assert emu.count(status=429) == 1
        emu.set_limits([(2, 0.2)])
        time.sleep(0.25)
        assert _stats(emu, "8.8.8.8", token, session).status_code == 200
        emu.reset_counters()
        assert emu.requests == []


def test_sliding_windows_are_exact_and_do_not_count_rejections():
    now = [0.0]
    windows = SlidingWindows([(2, 10), (3, 100)], clock=lambda: now[0])
    assert windows.admit("app") is None and windows.admit("app") is None
    assert windows.admit("app") == pytest.approx(10)  # the 10 s window is full until t=10
    now[0] = 9.999
    assert windows.admit("app") == pytest.approx(0.001)
    now[0] = 10.0
    assert windows.admit("app") is None  # the calls at t=0 left the 10 s window
    now[0] = 50.0
    assert windows.admit("app") == pytest.approx(50)  # 3 per 100 s: the first call leaves at t=100
    assert windows.admit("other app") is None  # budgets are per app + tenant


# ----- staging --------------------------------------------------------------------------------


def test_script_stages_a_503_then_the_default(emu, token):
    emu.script("10.209.67.177", [Answer(status=503, headers={"Retry-After": "2"}), Answer(delay=0.05)])
    first = _stats(emu, "10.209.67.177", token)
    assert first.status_code == 503 and first.headers["Retry-After"] == "2"
    assert first.json()["error"]["code"] == "ServiceUnavailable"
    assert _stats(emu, "10.209.67.177", token).json()["organizationPrevalence"] == 63515


def test_scripted_answers_still_need_a_token_but_bypass_limits():
    with Emulator(limits=[(1, 60)]) as emu:
        emu.script("1.1.1.1", [Answer(body={"x": 1}), Answer(body="not json")])
        assert _stats(emu, "1.1.1.1", None).status_code == 401  # the answer is not consumed
        token = _token(emu)
        assert _stats(emu, "9.9.9.9", token).status_code == 200  # uses the only call
        assert _stats(emu, "1.1.1.1", token).json() == {"x": 1}
        assert _stats(emu, "1.1.1.1", token).text == "not json"
        assert _stats(emu, "1.1.1.1", token).status_code == 429


def test_script_token_stages_a_server_error(emu):
    emu.script_token([Answer(status=500)])
    url = f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/token"
    reply = _session(emu).post(url, data={"grant_type": "client_credentials"})
    assert reply.status_code == 500 and reply.json()["error"] == "server_error"
    assert emu.token_requests[-1].status == 500


# ----- sign-in through MSAL -------------------------------------------------------------------


def test_msal_client_secret_gets_a_token_that_works(emu):
    result = _msal_app(emu, emu.client_secret).acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    assert result["token_type"] == "Bearer" and result["expires_in"] > 3000
    assert _stats(emu, "10.209.67.177", result["access_token"]).status_code == 200


def test_msal_wrong_secret_gets_aadsts7000215(emu):
    result = _msal_app(emu, "wrong").acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    assert result["error"] == "invalid_client" and result["error_codes"] == [7000215]
    assert result["error_description"].startswith("AADSTS7000215: Invalid client secret provided.")
    assert {"timestamp", "trace_id", "correlation_id"} <= set(result)


def test_unknown_client_and_tenant(emu):
    app = msal.ConfidentialClientApplication(
        "00000000-0000-0000-0000-000000000001", client_credential="x",
        authority=f"{emu.base_url}/{emu.tenant_id}", instance_discovery=False, http_client=_session(emu))
    result = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    assert (result["error"], result["error_codes"]) == ("unauthorized_client", [700016])
    with pytest.raises(ValueError, match="tenant"):
        _msal_app(emu, emu.client_secret, tenant="contoso.onmicrosoft.com")
    assert emu.requests[-1].kind == "discovery" and emu.requests[-1].status == 400
    reply = _session(emu).post(f"{emu.base_url}/nope/oauth2/v2.0/token", data={"grant_type": "client_credentials"})
    assert reply.status_code == 400 and reply.json()["error_codes"] == [90002]


def test_scope_must_end_with_default(emu):
    result = _msal_app(emu, emu.client_secret).acquire_token_for_client(
        scopes=["https://api.securitycenter.microsoft.com/Ip.Read.All"])
    assert result["error"] == "invalid_scope"


@pytest.mark.parametrize("kind", ["sha256_with_x5c", "sha1_thumbprint"])
def test_msal_certificate_credential(rsa_cert, kind):
    key_pem, cert_pem, cert = rsa_cert
    credential = {"private_key": key_pem}
    if kind == "sha256_with_x5c":
        credential["public_certificate"] = cert_pem  # PS256, x5t#S256 and x5c
    else:
        credential["thumbprint"] = cert.fingerprint(hashes.SHA1()).hex()  # RS256, x5t
    with Emulator() as emu:
        emu.register_certificate(cert_pem)
        result = _msal_app(emu, credential).acquire_token_for_client(scopes=[DEFAULT_SCOPE])
        assert "access_token" in result, result.get("error_description")


def test_certificate_must_be_registered_unless_subject_and_issuer_match(rsa_cert):
    key_pem, cert_pem, _ = rsa_cert
    with Emulator() as emu:
        refused = _msal_app(emu, {"private_key": key_pem, "public_certificate": cert_pem}).acquire_token_for_client(
            scopes=[DEFAULT_SCOPE])
        assert refused["error"] == "invalid_client" and refused["error_codes"] == [700027]
        # A rotated certificate with the registered subject and issuer passes through x5c.
        _, registered_pem, _ = _rsa_cert()
        emu.register_certificate(registered_pem)
        result = _msal_app(emu, {"private_key": key_pem, "public_certificate": cert_pem}).acquire_token_for_client(
            scopes=[DEFAULT_SCOPE])
        assert "access_token" in result, result.get("error_description")


def test_logs_hold_no_secret_or_token(caplog):
    caplog.set_level(logging.DEBUG)
    with Emulator() as emu:
        token = _token(emu)
        _stats(emu, "10.209.67.177", token)
        _stats(emu, "10.209.67.177", "bogus-token-value")
    assert caplog.records
    assert all(secret not in caplog.text for secret in (emu.client_secret, token, "bogus-token-value"))


def test_script_discovery_can_name_a_foreign_token_endpoint(emu):
    emu.script_discovery([Answer(body={"token_endpoint": "https://evil.example/t", "authorization_endpoint": "x"},
                                 headers={"content-type": "application/json"})])
    url = f"{emu.base_url}/{emu.tenant_id}/v2.0/.well-known/openid-configuration"
    staged = _session(emu).get(url)
    assert staged.json()["token_endpoint"] == "https://evil.example/t"
    assert list(k.lower() for k in staged.headers).count("content-type") == 1
    assert _session(emu).get(url).json()["token_endpoint"] == f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/token"


def test_reference_time_makes_test_net_3_recently_first_seen():
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    first = stats_for(ipaddress.ip_address("203.0.113.5"), now).first_seen
    assert now - dt.timedelta(days=3) <= dt.datetime.fromisoformat(first.replace("Z", "+00:00")) <= now


# ----- fault modes ----------------------------------------------------------------------------
#
# One emulator for the fault tests, with limits no test here can reach (default answers use
# quota); `femu` clears every staged answer after each test so a failure cannot leak a fault.


@pytest.fixture(scope="module")
def fault_emu():
    with Emulator(limits=[(100_000, 1)]) as shared:
        yield shared


@pytest.fixture
def femu(fault_emu):
    fault_emu.clear_scripts()
    yield fault_emu
    fault_emu.clear_scripts()


@pytest.fixture
def ftoken(fault_emu):
    return _token(fault_emu)  # per test: expire_tokens() ends every token issued before


def _get(emu: Emulator, ip: str, token: str | None, timeout: float = 5, **kwargs) -> requests.Response:
    # A plain requests call; verify per request (REQUESTS_CA_BUNDLE is set in this environment
    # and a Session with trust_env would let it win over session.verify).
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{emu.base_url}/api/ips/{ip}/stats", headers=headers, verify=emu.ca_path,
                        timeout=timeout, **kwargs)


def test_reset_fault_is_a_connection_error_recorded_with_status_0(femu, ftoken):
    femu.script("8.8.8.8", [faults.reset()])
    with pytest.raises(requests.exceptions.ConnectionError) as caught:
        _get(femu, "8.8.8.8", ftoken)
    assert not isinstance(caught.value, requests.exceptions.Timeout)
    seen = femu.stats_calls("8.8.8.8")[-1]
    assert (seen.status, seen.fault, seen.kind) == (0, "reset", "stats")
    assert _get(femu, "8.8.8.8", ftoken).status_code == 200  # used once, then the default


def test_reset_mid_body_sends_the_head_then_breaks_the_body(femu, ftoken):
    femu.script("10.209.67.177", [faults.reset_mid_body(), Answer(fault="reset_mid_body")])
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        _get(femu, "10.209.67.177", ftoken)
    # The status line and headers arrive whole: only reading the body fails.
    streamed = _get(femu, "10.209.67.177", ftoken, stream=True)
    assert streamed.status_code == 200 and int(streamed.headers["Content-Length"]) > 100
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        streamed.content  # noqa: B018
    assert not issubclass(requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)
    assert [(r.status, r.fault) for r in femu.stats_calls("10.209.67.177")[-2:]] == [(0, "reset_mid_body")] * 2
    assert femu.count(fault="reset_mid_body") >= 2


def test_reset_mid_body_cuts_a_staged_body_too(femu, ftoken):
    femu.script("8.8.8.8", [faults.reset_mid_body(503, {"error": {"code": "ServiceUnavailable", "pad": "x" * 500}})])
    streamed = _get(femu, "8.8.8.8", ftoken, stream=True)
    assert streamed.status_code == 503
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        streamed.content  # noqa: B018


def test_stall_past_the_read_timeout_blocks_neither_other_requests_nor_stop():
    emu = Emulator().start()
    try:
        token = _token(emu)
        emu.script("8.8.8.8", [Answer(fault="stall", delay=2), Answer(delay=2)])
        emu.script_token([faults.stall()])  # a token endpoint that never answers
        for _ in range(2):  # the fault and the plain delay behave the same
            started = time.perf_counter()
            with pytest.raises(requests.exceptions.ReadTimeout):
                _get(emu, "8.8.8.8", token, timeout=0.3)
            assert time.perf_counter() - started < 1.5
        with pytest.raises(requests.exceptions.ReadTimeout):
            requests.post(f"{emu.base_url}/{emu.tenant_id}/oauth2/v2.0/token", verify=emu.ca_path, timeout=0.3)
        # Three handlers are stalled; others still answer at once.
        started = time.perf_counter()
        assert _get(emu, "10.209.67.177", token).status_code == 200
        assert time.perf_counter() - started < 0.5
        assert [(r.fault, r.status) for r in emu.stats_calls("8.8.8.8")] == [("stall", 200), (None, 200)]
        assert emu.token_requests[-1].fault == "stall"
    finally:
        started = time.perf_counter()
        emu.stop()
        assert time.perf_counter() - started < 1.0


def test_request_time_is_taken_at_arrival(femu, ftoken):
    femu.script("8.8.8.8", [Answer(delay=0.3)])
    before = time.time()
    _get(femu, "8.8.8.8", ftoken)
    assert before <= femu.stats_calls("8.8.8.8")[-1].time < before + 0.2


def test_script_all_comes_before_per_ip_scripts_and_applies_to_any_ip(femu, ftoken):
    femu.script("8.8.8.8", [faults.server_error(500)])
    femu.script_all([faults.throttled(), faults.server_error(503)])
    assert _get(femu, "8.8.8.8", ftoken).status_code == 429  # global first
    assert _get(femu, "1.1.1.1", ftoken).status_code == 503  # any IP
    assert _get(femu, "1.1.1.1", ftoken).status_code == 200  # the global FIFO is used up
    assert _get(femu, "8.8.8.8", ftoken).status_code == 500  # then the per-IP FIFO
    assert _get(femu, "8.8.8.8", ftoken).status_code == 200


def test_forever_scripts_apply_until_cleared(femu, ftoken):
    femu.script_forever("8.8.8.8", faults.server_error(502))
    femu.script("8.8.8.8", [faults.throttled("1")])  # the IP's FIFO comes before its forever answer
    assert [_get(femu, "8.8.8.8", ftoken).status_code for _ in range(4)] == [429, 502, 502, 502]
    assert _get(femu, "1.1.1.1", ftoken).status_code == 200  # per-IP only
    femu.script_all_forever(faults.server_error(503))  # global: before every per-IP answer
    assert {_get(femu, ip, ftoken).status_code for ip in ("8.8.8.8", "1.1.1.1", "9.9.9.9")} == {503}
    femu.script_all_forever(None)
    assert _get(femu, "8.8.8.8", ftoken).status_code == 502 and _get(femu, "1.1.1.1", ftoken).status_code == 200
    femu.clear_scripts()
    assert _get(femu, "8.8.8.8", ftoken).status_code == 200


def test_a_staged_401_persists_even_for_fresh_tokens_but_other_answers_need_a_token(femu, ftoken):
    femu.script_all_forever(faults.persistent_unauthorized())
    for token in (ftoken, _token(femu), None):
        reply = _get(femu, "8.8.8.8", token)
        assert reply.status_code == 401 and reply.json()["error"]["code"] == "Unauthorized"
        assert reply.headers["WWW-Authenticate"].startswith("Bearer")
    femu.clear_scripts()
    femu.script_all([faults.server_error(500), faults.reset()])
    assert _get(femu, "8.8.8.8", None).status_code == 401  # bearer check first: nothing consumed
    assert _get(femu, "8.8.8.8", ftoken).status_code == 500
    with pytest.raises(requests.exceptions.ConnectionError):
        _get(femu, "8.8.8.8", ftoken)


def test_stats_fault_helpers(femu, ftoken):
    femu.script_all([faults.throttled(), faults.throttled("86400"), faults.server_error(504),
                     faults.html_error_page(), faults.truncated_json(), faults.wrong_content_type()])
    plain = _get(femu, "8.8.8.8", ftoken)
    assert plain.status_code == 429 and "Retry-After" not in plain.headers
    assert plain.json()["error"]["code"] == "TooManyRequests"
    absurd = _get(femu, "8.8.8.8", ftoken)
    assert absurd.status_code == 429 and absurd.headers["Retry-After"] == "86400"
    gateway = _get(femu, "8.8.8.8", ftoken)
    assert gateway.status_code == 504 and gateway.json()["error"]["code"] == "GatewayTimeout"
    page = _get(femu, "8.8.8.8", ftoken)
    assert page.status_code == 502 and page.headers["Content-Type"] == "text/html"
    assert "<title>502 Bad Gateway</title>" in page.text
    cut = _get(femu, "8.8.8.8", ftoken)
    assert cut.status_code == 200 and cut.headers["Content-Type"].startswith("application/json")
    assert cut.text.startswith('{"@odata.context"')
    with pytest.raises(requests.exceptions.JSONDecodeError):
        cut.json()
    plain_text = _get(femu, "8.8.8.8", ftoken)
    assert (plain_text.status_code, plain_text.headers["Content-Type"], plain_text.text) == (
        200, "text/plain; charset=utf-8", "OK")
    with pytest.raises(ValueError):
        faults.server_error(404)


def test_huge_body_is_several_megabytes_of_valid_looking_json(femu, ftoken):
    femu.script("8.8.8.8", [faults.huge_body(3), faults.huge_body(2, complete=False)])
    reply = _get(femu, "8.8.8.8", ftoken)
    assert reply.status_code == 200 and len(reply.content) == 3 << 20
    assert reply.json()["organizationPrevalence"] == 63515 and len(reply.json()["padding"]) > 3_000_000
    prefix = _get(femu, "8.8.8.8", ftoken)
    assert len(prefix.content) == (2 << 20) - 2 and prefix.text.startswith('{"@odata.context"')


def test_token_fault_helpers(femu):
    url = f"{femu.base_url}/{femu.tenant_id}/oauth2/v2.0/token"
    femu.script_token([faults.token_invalid_client(femu.client_id), faults.token_expired_secret(femu.client_id),
                       faults.token_invalid_json(), faults.token_server_error(), faults.token_server_error(503)])
    replies = [requests.post(url, data={"grant_type": "client_credentials"}, verify=femu.ca_path, timeout=5)
               for _ in range(5)]
    assert [r.status_code for r in replies] == [401, 401, 200, 500, 503]
    invalid, expired = replies[0].json(), replies[1].json()
    assert (invalid["error"], invalid["error_codes"]) == ("invalid_client", [7000215])
    assert (expired["error"], expired["error_codes"]) == ("invalid_client", [7000222])
    assert expired["error_description"].startswith(
        f"AADSTS7000222: The provided client secret keys for app '{femu.client_id}' are expired.")
    with pytest.raises(ValueError):
        json.loads(replies[2].text)
    assert replies[3].json()["error"] == "server_error" and replies[4].json()["error_codes"] == [50000]


def test_msal_sees_token_faults(femu):
    femu.script_token([faults.token_expired_secret(femu.client_id), faults.reset(), faults.token_invalid_json()])
    result = _msal_app(femu, femu.client_secret).acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    assert (result["error"], result["error_codes"]) == ("invalid_client", [7000222])
    with pytest.raises(requests.exceptions.ConnectionError):
        _msal_app(femu, femu.client_secret).acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    with pytest.raises(ValueError):  # MSAL lets json.JSONDecodeError through (and logs the body)
        _msal_app(femu, femu.client_secret).acquire_token_for_client(scopes=[DEFAULT_SCOPE])
    assert [(r.status, r.fault) for r in femu.token_requests[-3:]] == [(401, None), (0, "reset"), (200, None)]


def test_expire_tokens_makes_cached_tokens_fail_between_two_calls(femu):
    app = _msal_app(femu, femu.client_secret)
    first = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])["access_token"]
    assert _get(femu, "8.8.8.8", first).status_code == 200
    femu.expire_tokens()
    cached = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])["access_token"]
    assert cached == first  # MSAL does not know: it serves the token from its cache
    reply = _get(femu, "8.8.8.8", cached)
    assert reply.status_code == 401 and reply.json()["error"]["message"] == "The access token has expired."
    assert _get(femu, "8.8.8.8", _token(femu)).status_code == 200  # tokens issued afterwards work


def test_one_second_tokens_expire_and_msal_does_not_reuse_them():
    with Emulator(token_lifetime_seconds=1) as emu:
        app = _msal_app(emu, emu.client_secret)
        token = app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])
        assert token["expires_in"] == 1 and _get(emu, "8.8.8.8", token["access_token"]).status_code == 200
        # MSAL refreshes tokens with less than 5 minutes left, so it asks again at once.
        assert app.acquire_token_for_client(scopes=[DEFAULT_SCOPE])["access_token"] != token["access_token"]
        time.sleep(1.05)
        reply = _get(emu, "8.8.8.8", token["access_token"])
        assert reply.status_code == 401 and "expired" in reply.json()["error"]["message"]


def test_refused_base_url_refuses_connections():
    with faults.refused_base_url() as url:
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            requests.get(f"{url}/api/ips/8.8.8.8/stats", timeout=2)
        assert "refused" in str(caught.value).lower()


def test_answer_rejects_unknown_faults_and_negative_delays():
    with pytest.raises(ValueError, match="fault"):
        Answer(fault="explode")
    with pytest.raises(ValueError):
        Answer(delay=-1)
    assert Answer(fault="stall").wait > 60 and Answer(fault="stall", delay=2).wait == 2


def test_concurrent_global_answers_are_each_used_once(femu, ftoken):
    femu.script_all([faults.server_error(503)] * 8)
    statuses: list[int] = []
    lock = threading.Lock()

    def call(ip: str) -> None:
        status = _get(femu, ip, ftoken).status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=call, args=(f"8.8.8.{i}",)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200] * 4 + [503] * 8
