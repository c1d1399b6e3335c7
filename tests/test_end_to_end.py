"""Whole calls through the host against the HTTPS emulator, with real MSAL and real TLS."""

from __future__ import annotations

import logging

import pytest
from support import make_certificate

from plugin.emulator import Answer, Emulator
from plugin.errors import AuthError, ConfigError, PermissionDeniedError, ServiceUnavailableError
from plugin.host import run_action

MIXED = [
    "10.209.67.177",  # the documentation's example
    "198.51.100.7",  # never seen: 200 with prevalence 0
    "192.0.2.5",  # never seen: 404 (older behaviour)
    "hello world",  # not an IP (one string item with a space)
    "127.0.0.1",  # loopback: skipped
    "fe80::1%eth0",  # zone index
    "1.2.3.4/../../api/machines",  # a path fragment
    "203.0.113.9",  # seen, rare
    " 10.209.67.177 ",  # a repeat with whitespace: no second call
]


@pytest.fixture
def emu():
    """A fresh emulator per test, so counters and scripts start empty."""
    with Emulator() as emulator:
        yield emulator


def memory(emu: Emulator, **overrides) -> dict:
    """The emulator's connection with an in-process quota."""
    return emu.connection(**{"quota": {"backend": "memory"}, **overrides})


def test_a_mixed_list_gets_one_record_per_item_in_order_and_one_call_per_callable_ip(emu):
    out = run_action("enrich_ip", {"ips": MIXED}, memory(emu))
    assert [r["input"] for r in out["records"]] == MIXED
    assert [r["status"] for r in out["records"]] == [
        "enriched", "not_seen", "not_seen", "invalid", "skipped", "invalid", "invalid", "enriched", "enriched"]
    assert out["status"] == "partial"
    example = out["records"][0]["enrichment"]["data"]
    assert (example["organization_prevalence"], example["first_seen_time_dt"], example["last_seen_time_dt"]) == (
        63515, "2017-07-30T13:36:06Z", "2017-08-29T13:32:59Z")
    assert out["records"][7]["assessment"]["prevalence_band"] == "rare"
    called = sorted(r.path.split("?")[0] for r in emu.stats_calls())
    assert called == [f"/api/ips/{ip}/stats" for ip in sorted(["10.209.67.177", "198.51.100.7", "192.0.2.5", "203.0.113.9"])]
    assert {r.kind for r in emu.requests} <= {"stats", "token", "discovery"}
    assert out["summary"]["api_calls"] == 4


def test_an_invalid_ip_by_the_api_is_an_invalid_record(emu):
    emu.script("8.8.4.4", [Answer(status=400, body={"error": {"code": "InvalidIpAddress", "message": "x", "target": "t"}})])
    record = run_action("enrich_ip", {"ips": "8.8.4.4"}, memory(emu))["records"][0]
    assert (record["status"], record["error"]["code"]) == ("invalid", "api_invalid_ip")


def test_a_token_revoked_mid_run_is_replaced_once_and_the_call_succeeds(emu):
    conn = memory(emu)
    run_action("enrich_ip", {"ips": ["8.8.8.8"]}, conn)
    emu.revoke_tokens()
    out = run_action("enrich_ip", {"ips": ["8.8.4.4"]}, conn)
    assert out["records"][0]["status"] in ("enriched", "not_seen")
    assert len(emu.token_requests) == 2
    assert emu.count(status=401) == 1


def test_a_rejected_secret_is_auth_failed_with_the_aadsts_code_and_no_secret(emu, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-secret-value-that-must-not-leak"
    with pytest.raises(AuthError) as caught:
        run_action("enrich_ip", {"ips": ["8.8.8.8"]}, memory(emu, client_secret=wrong))
    assert caught.value.code == "auth_failed"
    assert "AADSTS7000215" in caught.value.message
    assert wrong not in caught.value.message and wrong not in caplog.text
    assert emu.stats_calls() == []


def test_a_missing_permission_is_named_by_check_and_by_enrich(emu):
    emu.set_roles([])
    for action, inputs in (("test_connection", {}), ("enrich_ip", {"ips": ["8.8.8.8"]})):
        with pytest.raises(PermissionDeniedError, match="Ip.Read.All") as caught:
            run_action(action, inputs, memory(emu))
        assert caught.value.code == "permission_denied"


def test_check_signs_in_and_makes_one_stats_call(emu):
    out = run_action("test_connection", {}, memory(emu))
    assert out["status"] == "success" and out["stats_call"] == {"ip": "10.209.67.177", "status": "enriched"}
    assert len(emu.stats_calls()) == 1


def test_a_429_from_the_service_is_waited_out_and_retried(emu):
    emu.script("8.8.8.8", [Answer(status=429, headers={"Retry-After": "1"})])
    out = run_action("enrich_ip", {"ips": ["8.8.8.8"], "priority": "analyst"}, memory(emu))
    assert out["records"][0]["status"] in ("enriched", "not_seen")
    assert len(emu.stats_calls("8.8.8.8")) == 2


def test_the_emulators_own_limits_never_see_more_than_the_quota_allows(emu):
    limits = [{"calls": 10, "per_seconds": 2}, {"calls": 16, "per_seconds": 60}]
    emu.set_limits(limits)
    # A share of 0.6 leaves the 4 worker threads' worth of headroom these tiny windows need:
    # a permit is taken a few milliseconds before its request reaches the service.
    conn = memory(emu, quota={"backend": "memory", "share": 0.6, "limits": limits})
    ips = [f"8.8.{i}.1" for i in range(12)]
    out = run_action("enrich_ip", {"ips": ips, "priority": "analyst", "max_wait_seconds": 3}, conn)
    assert emu.count(status=429) == 0
    deferred = [r for r in out["records"] if r["status"] == "deferred"]
    assert len(deferred) == 12 - 9  # the long window's cap: floor(16 * 0.6) = 9
    assert all(r["error"]["code"] == "quota_wait_exceeded" and r["error"]["retry_after_seconds"] > 0 for r in deferred)


def test_a_redirect_is_not_followed(emu):
    emu.script("8.8.8.8", [Answer(status=307, headers={"Location": "https://127.0.0.1:1/steal"})])
    record = run_action("enrich_ip", {"ips": ["8.8.8.8"]}, memory(emu))["records"][0]
    assert (record["status"], record["error"]["code"]) == ("failed", "http_error")
    assert len(emu.stats_calls()) == 1


def test_an_unsafe_endpoint_is_refused_before_any_request(emu):
    for key, url in (("api_base_url", "http://127.0.0.1:9"), ("authority_host", "https://login.evil.example")):
        with pytest.raises(ConfigError) as caught:
            run_action("enrich_ip", {"ips": ["8.8.8.8"]}, memory(emu, **{key: url}))
        assert caught.value.code == "unsafe_endpoint"
    assert emu.requests == []


def test_the_connections_ca_bundle_wins_over_requests_ca_bundle_in_the_environment(emu, monkeypatch):
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    monkeypatch.setenv("CURL_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    out = run_action("enrich_ip", {"ips": ["10.209.67.177"]}, memory(emu))
    assert out["records"][0]["status"] == "enriched"


def test_without_the_emulators_ca_tls_verification_fails_the_call(emu):
    conn = memory(emu)
    del conn["ca_bundle"]
    with pytest.raises(ServiceUnavailableError, match="TLS"):
        run_action("enrich_ip", {"ips": ["8.8.8.8"]}, conn)
    assert emu.token_requests == []


@pytest.mark.parametrize("kind, passphrase", [("pem", None), ("pem", b"pass-phrase-1"), ("pfx", b"pass-phrase-2"), ("pfx", None)])
def test_certificate_credentials_sign_in(emu, tmp_path, kind, passphrase):
    path, cert_pem, _ = make_certificate(tmp_path, kind, passphrase)
    emu.register_certificate(cert_pem)
    conn = memory(emu, certificate_path=str(path), client_secret=None)
    if passphrase:
        conn["certificate_passphrase"] = passphrase.decode()
    out = run_action("enrich_ip", {"ips": ["10.209.67.177"]}, conn)
    assert out["records"][0]["status"] == "enriched"
    assert len(emu.token_requests) == 1


def test_a_wrong_certificate_passphrase_is_a_config_error_naming_the_field(emu, tmp_path):
    path, _, _ = make_certificate(tmp_path, "pem", b"right-passphrase")
    conn = memory(emu, certificate_path=str(path), certificate_passphrase="wrong-passphrase", client_secret=None)
    with pytest.raises(ConfigError, match="certificate"):
        run_action("enrich_ip", {"ips": ["8.8.8.8"]}, conn)


def _provider(emu, clock):
    from plugin.auth import TokenProvider
    from plugin.config import load_connection

    return TokenProvider(load_connection(memory(emu)), sleep=clock.sleep)


def test_a_token_endpoint_500_is_retried_and_then_signs_in(emu, clock):
    emu.script_token([Answer(status=500, body={"error": "server_error"})])
    assert _provider(emu, clock).token()
    assert len(emu.token_requests) == 2 and clock.sleeps == [0.5]


def test_a_token_endpoint_that_keeps_failing_is_service_unavailable_after_three_attempts(emu, clock):
    emu.script_token([Answer(status=503)] * 5)
    with pytest.raises(ServiceUnavailableError):
        _provider(emu, clock).token()
    assert len(emu.token_requests) == 3 and clock.sleeps == [0.5, 1.0]


def test_a_second_process_reuses_the_token_from_the_owner_only_cache_file(emu, tmp_path):
    from plugin.shared import forget_all

    conn = memory(emu, state_dir=str(tmp_path / "state"))
    run_action("enrich_ip", {"ips": ["8.8.8.8"]}, conn)
    forget_all()  # what a new process starts with: nothing in memory
    run_action("enrich_ip", {"ips": ["8.8.4.4"]}, conn)
    assert len(emu.token_requests) == 1
    (cache_file,) = (tmp_path / "state").glob("tokens-*.json")
    assert cache_file.stat().st_mode & 0o077 == 0
    assert emu.client_secret not in cache_file.read_text()


def test_a_revoked_token_is_dropped_from_the_cache_file_too(emu, tmp_path):
    from plugin.shared import forget_all

    conn = memory(emu, state_dir=str(tmp_path / "state"))
    run_action("enrich_ip", {"ips": ["8.8.8.8"]}, conn)
    emu.revoke_tokens()
    run_action("enrich_ip", {"ips": ["8.8.4.4"]}, conn)  # 401, fresh token, saved
    forget_all()
    run_action("enrich_ip", {"ips": ["9.9.9.9"]}, conn)
    assert len(emu.token_requests) == 2 and emu.count(status=401) == 1


def test_a_second_call_within_the_ttl_is_served_from_the_cache_with_its_original_time(emu, tmp_path):
    conn = emu.connection(state_dir=str(tmp_path / "state"))  # default backend: sqlite
    first = run_action("enrich_ip", {"ips": ["10.209.67.177", "8.8.8.8"]}, conn)
    second = run_action("enrich_ip", {"ips": ["10.209.67.177", "8.8.8.8"]}, conn)
    assert len(emu.stats_calls()) == 2
    assert [r["cached"] for r in second["records"]] == [True, True]
    assert second["summary"]["cache_hits"] == 2 and second["summary"]["api_calls"] == 0
    assert [r["enrichment"] for r in second["records"]] == [r["enrichment"] for r in first["records"]]
    fresh = run_action("enrich_ip", {"ips": ["8.8.8.8"], "use_cache": False}, conn)
    assert fresh["records"][0]["cached"] is False and len(emu.stats_calls()) == 3


def test_deferred_and_failed_answers_are_never_cached(emu, tmp_path):
    from plugin.shared import forget_all

    conn = emu.connection(state_dir=str(tmp_path / "state"))
    emu.script("8.8.8.8", [Answer(status=500)] * 4)
    emu.script("8.8.4.4", [Answer(status=429, headers={"Retry-After": "2"})])
    failed = run_action("enrich_ip", {"ips": ["8.8.8.8"]}, conn)["records"][0]
    deferred = run_action("enrich_ip", {"ips": ["8.8.4.4"], "max_wait_seconds": 1}, conn)["records"][0]
    assert (failed["status"], deferred["status"]) == ("failed", "deferred")
    forget_all()  # a new process, the same state dir (cache and the 2 s pause)
    again = run_action("enrich_ip", {"ips": ["8.8.8.8", "8.8.4.4"]}, conn)
    assert [r["cached"] for r in again["records"]] == [False, False]  # asked again: neither answer was kept
    assert len(emu.stats_calls("8.8.8.8")) == 5 and len(emu.stats_calls("8.8.4.4")) == 2


def test_check_always_signs_in_even_with_a_cached_token(emu, tmp_path):
    conn = memory(emu, state_dir=str(tmp_path / "state"))
    run_action("enrich_ip", {"ips": ["8.8.8.8"]}, conn)
    run_action("test_connection", {}, conn)
    run_action("test_connection", {}, conn)
    assert len(emu.token_requests) == 3
