"""The attempt loop against a fake transport: what each answer leads to, and how many calls it costs."""

from __future__ import annotations

import random

import pytest
import requests
import requests_mock

from support import FakeClock, FakeTokens, connection_doc
from plugin.actions import enrich_ip
from plugin.config import load_connection
from plugin.errors import AuthError, PermissionDeniedError
from plugin.quota import MemoryQuota
from plugin.session import DefenderSession
from plugin.transport import api_session

URL = "https://api.security.microsoft.com/api/ips/8.8.8.8/stats"
OK = {"json": {"ipAddress": "8.8.8.8", "organizationPrevalence": 42, "orgPrevalence": "42",
               "orgFirstSeen": "2026-11-01T10:00:00Z", "orgLastSeen": "2026-12-01T10:00:00.1234567Z"}}


@pytest.fixture
def world(clock: FakeClock):
    """A session on a mocked transport, a fake token provider and a fake clock."""
    conn = load_connection(connection_doc())
    http = api_session(conn)
    adapter = requests_mock.Adapter()
    http.mount("https://", adapter)
    tokens = FakeTokens()
    session = DefenderSession(conn, quota=MemoryQuota(conn.quota, clock), tokens=tokens, http=http,
                              clock=clock, sleep=clock.sleep, rng=random.Random(7))
    return session, adapter, tokens, clock, conn


def enrich(world, ips=("8.8.8.8",), **inputs):
    session, _, _, _, conn = world
    return enrich_ip.run({"ips": list(ips), **inputs}, conn, session=session)


def calls_to(adapter, url=URL):
    return [r for r in adapter.request_history if r.url.split("?")[0] == url]


def test_a_429_pauses_for_retry_after_then_the_retry_succeeds(world):
    _, adapter, _, clock, _ = world
    adapter.register_uri("GET", URL, [{"status_code": 429, "headers": {"Retry-After": "3"}}, OK])
    out = enrich(world)
    assert out["records"][0]["status"] == "enriched"
    assert len(calls_to(adapter)) == 2
    assert sum(clock.sleeps) == pytest.approx(3.0)
    assert out["summary"]["api_calls"] == 2


def test_a_429_with_an_http_date_is_honoured(world):
    _, adapter, _, clock, _ = world
    adapter.register_uri("GET", URL, [{"status_code": 429, "headers": {"Retry-After": "Mon, 01 Jan 1990 00:00:00 GMT"}}, OK])
    assert enrich(world)["records"][0]["status"] == "enriched"


def test_a_429_longer_than_max_wait_defers_at_once_with_the_wait(world):
    _, adapter, _, clock, _ = world
    adapter.register_uri("GET", URL, [{"status_code": 429, "headers": {"Retry-After": "120"}}, OK])
    record = enrich(world, max_wait_seconds=10)["records"][0]
    assert record["status"] == "deferred"
    assert record["error"]["code"] == "throttled"
    assert record["error"]["retry_after_seconds"] == pytest.approx(120, abs=0.1)
    assert clock.sleeps == []  # deferred immediately, not after sleeping
    assert len(calls_to(adapter)) == 1


def test_a_503_is_retried_after_a_backoff(world):
    _, adapter, _, clock, _ = world
    adapter.register_uri("GET", URL, [{"status_code": 503}, OK])
    out = enrich(world)
    assert out["records"][0]["status"] == "enriched"
    assert len(calls_to(adapter)) == 2
    assert len(clock.sleeps) == 1 and 0 <= clock.sleeps[0] <= 0.5


def test_a_500_that_persists_fails_the_record_after_bounded_attempts(world):
    _, adapter, _, _, _ = world
    adapter.register_uri("GET", URL, status_code=500)
    out = enrich(world)
    record = out["records"][0]
    assert (record["status"], record["error"]["code"]) == ("failed", "server_error")
    assert len(calls_to(adapter)) == 4
    assert out["status"] == "failed"


def test_timeouts_are_retried_then_fail_the_record(world):
    _, adapter, _, _, _ = world
    adapter.register_uri("GET", URL, exc=requests.exceptions.ReadTimeout)
    record = enrich(world)["records"][0]
    assert (record["status"], record["error"]["code"]) == ("failed", "timeout")
    assert len(calls_to(adapter)) == 4


def test_a_timeout_then_an_answer_enriches(world):
    _, adapter, _, _, _ = world
    adapter.register_uri("GET", URL, [{"exc": requests.exceptions.ConnectTimeout}, OK])
    assert enrich(world)["records"][0]["status"] == "enriched"


def test_a_401_gets_one_fresh_token_and_the_retry_succeeds(world):
    _, adapter, tokens, _, _ = world
    adapter.register_uri("GET", URL, [{"status_code": 401}, OK])
    assert enrich(world)["records"][0]["status"] == "enriched"
    sent = [r.headers["Authorization"] for r in calls_to(adapter)]
    assert sent == ["Bearer token-1", "Bearer token-2"]
    assert tokens.invalidated == ["token-1"]


def test_a_401_on_a_fresh_token_is_auth_failed(world):
    _, adapter, tokens, _, _ = world
    adapter.register_uri("GET", URL, status_code=401)
    with pytest.raises(AuthError) as caught:
        enrich(world)
    assert caught.value.code == "auth_failed"
    assert len(calls_to(adapter)) == 2


def test_a_403_names_the_missing_permission(world):
    _, adapter, _, _, _ = world
    adapter.register_uri("GET", URL, status_code=403, json={"error": {"code": "Forbidden"}})
    with pytest.raises(PermissionDeniedError, match="Ip.Read.All"):
        enrich(world)


@pytest.mark.parametrize(
    "answer, status, code",
    [
        ({"status_code": 404, "json": {"error": {"code": "NotFound"}}}, "not_seen", None),
        ({"status_code": 400, "json": {"error": {"code": "InvalidIpAddress"}}}, "invalid", "api_invalid_ip"),
        ({"status_code": 400, "json": {"error": {"code": "InvalidRequestBody"}}}, "failed", "http_error"),
        ({"status_code": 200, "text": "<html>proxy error</html>"}, "failed", "bad_response"),
        ({"status_code": 200, "json": ["not", "an", "object"]}, "failed", "bad_response"),
        ({"status_code": 200, "content": b"{" * 2_000_000}, "failed", "bad_response"),
        ({"status_code": 418}, "failed", "http_error"),
    ],
)
def test_each_final_answer_maps_to_one_record_status(world, answer, status, code):
    _, adapter, _, _, _ = world
    adapter.register_uri("GET", URL, **answer)
    record = enrich(world)["records"][0]
    assert record["status"] == status
    assert (record["error"] or {}).get("code") == code


def test_a_full_quota_defers_without_a_request_and_says_when_to_retry(world):
    session, adapter, _, clock, conn = world
    adapter.register_uri("GET", URL, **OK)
    for _ in range(95):
        session.quota.try_acquire("analyst")
    clock.now += 10
    record = enrich(world, max_wait_seconds=5)["records"][0]
    assert record["status"] == "deferred"
    assert record["error"]["code"] == "quota_wait_exceeded"
    assert record["error"]["retry_after_seconds"] == pytest.approx(50, abs=0.1)
    assert calls_to(adapter) == []


def test_duplicate_ips_in_one_call_cost_one_request_and_keep_their_records(world):
    _, adapter, _, _, _ = world
    adapter.register_uri("GET", URL, **OK)
    out = enrich(world, ips=["8.8.8.8", " 8.8.8.8 ", "::ffff:8.8.8.8"])
    assert [r["status"] for r in out["records"]] == ["enriched"] * 3
    assert [r["input"] for r in out["records"]] == ["8.8.8.8", " 8.8.8.8 ", "::ffff:8.8.8.8"]
    assert len(calls_to(adapter)) == 1


def test_the_look_back_window_is_sent_as_lookBackHours(world):
    _, adapter, _, _, _ = world
    adapter.register_uri("GET", URL, **OK)
    enrich(world, look_back_hours=24)
    assert calls_to(adapter)[0].qs == {"lookbackhours": ["24"]}


def test_an_analyst_is_served_at_once_while_a_scheduled_job_holds_its_lane_full(world):
    session, adapter, _, clock, _ = world
    adapter.register_uri("GET", URL, **OK)
    while session.quota.try_acquire("scheduled") == 0:  # a batch job fills its 80 %
        pass
    scheduled = enrich(world, priority="scheduled", max_wait_seconds=30)["records"][0]
    assert scheduled["status"] == "deferred" and scheduled["error"]["retry_after_seconds"] == pytest.approx(60, abs=0.1)
    analyst = enrich(world, priority="analyst")["records"][0]
    assert analyst["status"] == "enriched"
    assert clock.sleeps == []  # nobody slept: the batch deferred at once, the analyst had room


def test_an_answer_cut_off_mid_body_is_retried_like_a_connection_error(world):
    _, adapter, _, _, _ = world
    adapter.register_uri("GET", URL, [{"exc": requests.exceptions.ChunkedEncodingError}, OK])
    assert enrich(world)["records"][0]["status"] == "enriched"
    assert len(calls_to(adapter)) == 2
