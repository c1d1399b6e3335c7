"""The result cache on its three stores: what is kept (and what never is), for how long, under which key,
shared by cache objects, processes and forks, private on disk, and harmless when corrupt or unreachable."""

from __future__ import annotations

import dataclasses
import json
import logging
import multiprocessing
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import redis
from redis_server import free_port, redis_url  # noqa: F401  (the fixture)
from support import FakeClock, connection_doc

from plugin.cache import MemoryCache, NullCache, decode, encode, entry_key, make_cache, shared_cache
from plugin.cache_stores import RedisCache, SQLiteCache
from plugin.config import load_connection
from plugin.models import IpStats, LookupOutcome

UTC = timezone.utc
IP = "10.209.67.177"
RETRIEVED = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
TTL = 3600

STORABLE = {
    "enriched": LookupOutcome("stats", stats=IpStats(IP, 63515, datetime(2017, 7, 30, 13, 36, 6, tzinfo=UTC),
                                                     datetime(2017, 8, 29, 13, 32, 59, 987654, tzinfo=UTC)),
                              retrieved_at=RETRIEVED),
    "not_seen (prevalence 0, null dates)": LookupOutcome("stats", stats=IpStats(IP, 0, None, None), retrieved_at=RETRIEVED),
    "not_found (404)": LookupOutcome("not_found", retrieved_at=RETRIEVED),
    "invalid (the API's 400)": LookupOutcome("invalid", error_code="api_invalid_ip",
                                             message="the Defender API rejected the address (InvalidIpAddress)",
                                             retrieved_at=RETRIEVED),
}
NEVER_STORED = {
    "deferred": LookupOutcome("deferred", error_code="quota_wait_exceeded", retry_after_seconds=42.0,
                              message="quota would make this call wait too long"),
    "failed": LookupOutcome("failed", error_code="timeout", message="the Defender API did not answer in time"),
    "failed with a retrieval time": LookupOutcome("failed", error_code="bad_response", message="unreadable",
                                                  retrieved_at=RETRIEVED),
    "a hit (re-storing would stretch its TTL)": dataclasses.replace(STORABLE["not_found (404)"], cached=True),
    "stats without stats": LookupOutcome("stats", retrieved_at=RETRIEVED),
    "an answer without a retrieval time": LookupOutcome("not_found"),
}


class Env:
    """One backend under test: connections for it, caches on it, and raw access to its storage."""

    def __init__(self, backend: str, tmp_path: Path, redis_url: str | None):  # noqa: F811 - a plain value here, not the fixture
        self.backend = backend
        self.state_dir = tmp_path / "state"
        self.redis_url = redis_url
        self.tenant = str(uuid.uuid4())  # a fresh tenant per test keeps tests apart on the session's Redis
        self.clock = None if backend == "redis" else FakeClock(start=1_700_000_000.0)

    def conn(self, *, cache=None, quota=None, **overrides):
        quota = {"backend": self.backend, **({"redis_url": self.redis_url} if self.redis_url else {}), **(quota or {})}
        doc = connection_doc(tenant_id=self.tenant, state_dir=str(self.state_dir), quota=quota,
                             **({"cache": cache} if cache is not None else {}))
        doc.update(overrides)
        return load_connection(doc, env={})

    def open(self, conn=None):
        """A cache as the plugin gets it: memory from the process registry (its sharing unit), the others made afresh."""
        conn = conn or self.conn()
        if self.backend == "memory":
            return shared_cache(conn)
        return make_cache(conn, clock=self.clock)

    def inject(self, cache, ip: str, look_back_hours: int, payload) -> None:
        """Write a raw payload under the entry's key, as a corrupt store or another version would hold it."""
        if self.backend == "memory":
            key = entry_key(cache._scope, ip, look_back_hours)
            with cache._lock:
                cache._entries[key] = (cache._clock() + 100, payload)
        elif self.backend == "sqlite":
            with sqlite3.connect(cache.path) as db:
                db.execute("INSERT OR REPLACE INTO result_cache VALUES (?, ?, ?)",
                           (entry_key(cache._scope, ip, look_back_hours), self.clock() + 100, payload))
        else:
            redis.Redis.from_url(self.redis_url).set(cache.key(ip, look_back_hours), payload, ex=100)

    def stored(self, cache) -> int:
        """How many entries the store holds for this test's tenant."""
        if self.backend == "memory":
            return len(cache) if isinstance(cache, MemoryCache) else 0
        if self.backend == "sqlite":
            if not (self.state_dir / "cache.sqlite3").exists():
                return 0
            with sqlite3.connect(self.state_dir / "cache.sqlite3") as db:
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'result_cache'").fetchone():
                    return 0
                return db.execute("SELECT COUNT(*) FROM result_cache WHERE key LIKE ?", (f"%{self.tenant}%",)).fetchone()[0]
        return len(list(redis.Redis.from_url(self.redis_url).scan_iter(f"defender-ip:cache:*{self.tenant}*")))


@pytest.fixture(params=["memory", "sqlite", "redis"])
def env(request, tmp_path) -> Env:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    return Env(request.param, tmp_path, url)


@pytest.fixture(params=["memory", "sqlite"])
def clocked(request, tmp_path) -> Env:
    return Env(request.param, tmp_path, None)


# --- what is kept, and what never is --------------------------------------------------------------

@pytest.mark.parametrize("name", STORABLE)
def test_each_storable_outcome_round_trips_as_a_hit_with_its_original_retrieval_time(env, name):
    outcome = STORABLE[name]
    cache = env.open()
    assert cache.get(IP, 720) is None
    cache.put(IP, 720, outcome)
    hit = cache.get(IP, 720)
    assert hit == dataclasses.replace(outcome, cached=True)
    assert hit.retrieved_at.tzinfo is not None and hit.retrieved_at.utcoffset() == timedelta(0)


def test_times_in_other_zones_come_back_as_the_same_instant_in_utc(env):
    cet = timezone(timedelta(hours=2))
    outcome = LookupOutcome("stats", stats=IpStats(IP, 3, datetime(2024, 4, 1, 8, 0, 0, 1, tzinfo=cet), None),
                            retrieved_at=datetime(2024, 5, 1, 14, 0, 0, 500000, tzinfo=cet))
    cache = env.open()
    cache.put(IP, 24, outcome)
    hit = cache.get(IP, 24)
    assert hit.retrieved_at == outcome.retrieved_at and hit.retrieved_at.tzinfo == UTC
    assert hit.stats.first_seen == datetime(2024, 4, 1, 6, 0, 0, 1, tzinfo=UTC)


@pytest.mark.parametrize("name", NEVER_STORED)
def test_deferred_failed_and_unusable_outcomes_are_never_stored(env, name):
    cache = env.open()
    cache.put(IP, 720, NEVER_STORED[name])
    assert cache.get(IP, 720) is None
    assert env.stored(cache) == 0


def test_the_payload_is_small_json_with_iso_times_in_utc_with_microseconds():
    doc = json.loads(encode(STORABLE["enriched"]))
    assert doc == {"v": 1, "kind": "stats", "prevalence": 63515, "first_seen": "2017-07-30T13:36:06.000000+00:00",
                   "last_seen": "2017-08-29T13:32:59.987654+00:00", "error_code": None, "message": None,
                   "retrieved_at": "2024-05-01T12:00:00.123456+00:00"}
    assert len(encode(STORABLE["enriched"])) < 300


# --- how long ---------------------------------------------------------------------------------------

def test_an_entry_hits_until_its_ttl_and_misses_after_it(clocked):
    cache = make_cache(clocked.conn(cache={"ttl_seconds": 600}), clock=clocked.clock)
    cache.put(IP, 720, STORABLE["enriched"])
    clocked.clock.now += 599
    assert cache.get(IP, 720).retrieved_at == RETRIEVED  # the retrieval time, not the time of the hit
    clocked.clock.now += 2
    assert cache.get(IP, 720) is None


def test_the_default_ttl_is_an_hour(clocked):
    cache = make_cache(clocked.conn(), clock=clocked.clock)
    cache.put(IP, 720, STORABLE["not_found (404)"])
    clocked.clock.now += TTL - 1
    assert cache.get(IP, 720) is not None
    clocked.clock.now += 2
    assert cache.get(IP, 720) is None


def test_putting_a_hit_back_does_not_extend_its_life(clocked):
    cache = make_cache(clocked.conn(), clock=clocked.clock)
    cache.put(IP, 720, STORABLE["enriched"])
    clocked.clock.now += TTL - 10
    cache.put(IP, 720, cache.get(IP, 720))
    clocked.clock.now += 11
    assert cache.get(IP, 720) is None


def test_a_new_answer_replaces_the_old_one_and_restarts_the_ttl(clocked):
    cache = make_cache(clocked.conn(), clock=clocked.clock)
    cache.put(IP, 720, STORABLE["not_found (404)"])
    clocked.clock.now += TTL - 10
    cache.put(IP, 720, STORABLE["enriched"])
    clocked.clock.now += 20
    assert cache.get(IP, 720).stats.prevalence == 63515


def test_redis_expires_entries_on_the_server(redis_url):  # noqa: F811
    env = Env("redis", Path("/nonexistent"), redis_url)
    cache = make_cache(env.conn())
    cache.put(IP, 720, STORABLE["enriched"])
    key = f"defender-ip:cache:global:{env.tenant}:{IP}:720"
    assert 3590 < redis.Redis.from_url(redis_url).ttl(key) <= TTL
    short = make_cache(env.conn(cache={"ttl_seconds": 1}))
    short.put(IP, 24, STORABLE["enriched"])
    assert short.get(IP, 24) is not None
    assert redis.Redis.from_url(redis_url).pttl(short.key(IP, 24)) <= 1000
    time.sleep(1.2)
    assert short.get(IP, 24) is None


def test_redis_refuses_an_injected_clock(redis_url):  # noqa: F811
    with pytest.raises(ValueError, match="Redis server"):
        make_cache(Env("redis", Path("/nonexistent"), redis_url).conn(), clock=FakeClock())


# --- under which key ----------------------------------------------------------------------------------

KEY_CASES = [
    # (case, reader connection overrides, reader ip, reader look-back, hit?)
    ("same connection", {}, IP, 720, True),
    ("another app (client id) of the same tenant", {"client_id": "abcdefab-0000-1111-2222-333333333333"}, IP, 720, True),
    ("the tenant in upper case", {"tenant_id": "UPPER"}, IP, 720, True),
    ("the IP with surrounding spaces", {}, f"  {IP} ", 720, True),
    ("the IP as IPv4-mapped IPv6", {}, f"::ffff:{IP}", 720, True),
    ("another tenant", {"tenant_id": "99999999-8888-7777-6666-555555555555"}, IP, 720, False),
    ("another cloud", {"cloud": "gcc"}, IP, 720, False),
    ("another look-back", {}, IP, 24, False),
    ("another IP", {}, "10.209.67.178", 720, False),
]


@pytest.mark.parametrize("case, overrides, ip, look_back, hit", KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_entries_are_keyed_by_cloud_tenant_ip_and_look_back_never_by_client(env, case, overrides, ip, look_back, hit):
    env.open(env.conn()).put(IP, 720, STORABLE["enriched"])
    if overrides.get("tenant_id") == "UPPER":
        overrides = {"tenant_id": env.tenant.upper()}
    reader = env.open(env.conn(**overrides))
    assert (reader.get(ip, look_back) is not None) is hit


def test_ipv6_entries_are_keyed_by_their_canonical_form(env):
    cache = env.open()
    cache.put("2001:db8::1", 720, STORABLE["not_found (404)"])
    assert cache.get("2001:0DB8:0:0::0001", 720) is not None


# --- switched off -------------------------------------------------------------------------------------

@pytest.mark.parametrize("settings", [{"enabled": False}, {"ttl_seconds": 0}, {"enabled": False, "ttl_seconds": 60}],
                         ids=["enabled false", "ttl 0", "enabled false with a ttl"])
def test_a_disabled_cache_or_a_zero_ttl_keeps_nothing(env, settings):
    cache = make_cache(env.conn(cache=settings), clock=env.clock)
    assert isinstance(cache, NullCache)
    cache.put(IP, 720, STORABLE["enriched"])
    assert cache.get(IP, 720) is None
    assert not (env.state_dir / "cache.sqlite3").exists()  # not even a file
    assert env.stored(env.open()) == 0
    cache.close()


def test_a_zero_ttl_does_not_read_what_other_settings_stored(env):
    env.open().put(IP, 720, STORABLE["enriched"])
    assert make_cache(env.conn(cache={"ttl_seconds": 0}), clock=env.clock).get(IP, 720) is None


# --- corrupt or unknown payloads ----------------------------------------------------------------------

GOOD = encode(STORABLE["enriched"])
CORRUPT = {
    "not json": "{not json",
    "not utf-8": b"\xff\xfe\x00garbage",
    "a list": "[1, 2]",
    "a newer format": GOOD.replace('"v":1', '"v":2'),
    "a kind never stored": GOOD.replace('"kind":"stats"', '"kind":"deferred"'),
    "prevalence as a string": GOOD.replace("63515", '"63515"'),
    "prevalence negative": GOOD.replace("63515", "-1"),
    "prevalence a boolean": GOOD.replace("63515", "true"),
    "no retrieval time": GOOD.replace('"retrieved_at":"2024-05-01T12:00:00.123456+00:00"', '"retrieved_at":null'),
    "a naive retrieval time": GOOD.replace("2024-05-01T12:00:00.123456+00:00", "2024-05-01T12:00:00"),
    "a date that is no date": GOOD.replace("2017-07-30T13:36:06.000000+00:00", "yesterday"),
    "a date as a number": GOOD.replace('"2017-07-30T13:36:06.000000+00:00"', "1501421766"),
    "a message as an object": GOOD.replace('"message":null', '"message":{"x":1}'),
    "a missing field": GOOD.replace(',"prevalence":63515', ""),
    "empty": "",
}


@pytest.mark.parametrize("name", CORRUPT)
def test_a_corrupt_or_unknown_payload_is_a_miss_never_a_crash(env, name):
    cache = env.open()
    env.inject(cache, IP, 720, GOOD)
    assert cache.get(IP, 720) is not None  # the injection itself works
    env.inject(cache, IP, 720, CORRUPT[name])
    assert cache.get(IP, 720) is None
    cache.put(IP, 720, STORABLE["enriched"])  # and a fresh answer replaces it
    assert cache.get(IP, 720) is not None


def test_decode_rejects_what_encode_never_writes():
    assert decode(GOOD, IP) == dataclasses.replace(STORABLE["enriched"], cached=True)
    assert decode(None, IP) is None
    assert all(decode(payload, IP) is None for payload in CORRUPT.values())


# --- the memory store ---------------------------------------------------------------------------------

def test_the_memory_store_is_bounded_and_evicts_the_oldest():
    cache = MemoryCache("global:t", TTL, clock=FakeClock(), max_entries=100)
    for i in range(250):
        cache.put(f"10.0.{i // 256}.{i % 256}", 720, STORABLE["not_found (404)"])
    assert len(cache) == 100
    assert cache.get("10.0.0.0", 720) is None and cache.get("10.0.0.149", 720) is None
    assert cache.get("10.0.0.150", 720) is not None and cache.get("10.0.0.249", 720) is not None


def test_the_memory_store_drops_expired_entries_as_it_goes():
    clock = FakeClock()
    cache = MemoryCache("global:t", 60, clock=clock)
    for i in range(50):
        cache.put(f"10.0.0.{i}", 720, STORABLE["not_found (404)"])
    clock.now += 61
    cache.put("10.0.1.1", 720, STORABLE["not_found (404)"])
    assert len(cache) == 1


def test_one_process_shares_one_memory_cache_per_tenant_whatever_the_app(tmp_path):
    env = Env("memory", tmp_path, None)
    assert shared_cache(env.conn()) is shared_cache(env.conn(client_id="abcdefab-0000-1111-2222-333333333333"))
    assert shared_cache(env.conn()) is not shared_cache(env.conn(cache={"ttl_seconds": 60}))


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_threads_share_one_cache_safely(backend, tmp_path):
    env = Env(backend, tmp_path, None)
    cache = make_cache(env.conn(), clock=env.clock)
    errors = []

    def work(n):
        try:
            for i in range(100):
                ip = f"10.{n}.0.{i}"
                cache.put(ip, 720, STORABLE["enriched"])
                assert cache.get(ip, 720).stats.prevalence == 63515
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


# --- the SQLite store: processes, files, modes --------------------------------------------------------

def test_two_sqlite_caches_on_one_state_dir_share_entries(tmp_path):
    env = Env("sqlite", tmp_path, None)
    first, second = make_cache(env.conn(), clock=env.clock), make_cache(env.conn(), clock=env.clock)
    first.put(IP, 720, STORABLE["enriched"])
    assert second.get(IP, 720) == dataclasses.replace(STORABLE["enriched"], cached=True)
    second.put("10.1.1.1", 24, STORABLE["invalid (the API's 400)"])
    assert first.get("10.1.1.1", 24).kind == "invalid"


def test_the_cache_is_a_file_of_its_own_beside_the_quota(tmp_path):
    env = Env("sqlite", tmp_path, None)
    make_cache(env.conn()).put(IP, 720, STORABLE["enriched"])
    assert (env.state_dir / "cache.sqlite3").is_file()
    with sqlite3.connect(env.state_dir / "cache.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert [r[1] for r in db.execute("PRAGMA table_info(result_cache)")] == ["key", "expires", "payload"]


CHILD = """
import json, sys
from datetime import datetime, timezone
from plugin.cache import make_cache
from plugin.config import load_connection
from plugin.models import IpStats, LookupOutcome
cache = make_cache(load_connection(json.loads(sys.argv[1]), env={}))
cache.put("10.9.8.7", 720, LookupOutcome("stats", stats=IpStats("10.9.8.7", 42, None, None),
                                         retrieved_at=datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=timezone.utc)))
cache.close()
"""


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_an_entry_written_by_another_process_is_read(backend, tmp_path, request):
    env = Env(backend, tmp_path, request.getfixturevalue("redis_url") if backend == "redis" else None)
    doc = connection_doc(tenant_id=env.tenant, state_dir=str(env.state_dir), client_id="abcdefab-0000-1111-2222-333333333333",
                         quota={"backend": backend, **({"redis_url": env.redis_url} if env.redis_url else {})})
    subprocess.run([sys.executable, "-c", CHILD, json.dumps(doc)], check=True, timeout=60)
    hit = make_cache(env.conn()).get("10.9.8.7", 720)
    assert hit.stats.prevalence == 42 and hit.cached
    assert hit.retrieved_at == datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def test_a_forked_child_opens_its_own_connection_and_its_rows_are_read(tmp_path):
    env = Env("sqlite", tmp_path, None)
    cache = make_cache(env.conn())
    assert cache.get(IP, 720) is None  # the parent's connection is open before the fork

    def child():
        cache.put(IP, 720, STORABLE["enriched"])
        os._exit(0 if cache.get(IP, 720) is not None else 1)

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 0
    assert cache.get(IP, 720).stats.prevalence == 63515  # and the parent's connection still works


def test_the_state_dir_and_cache_files_are_owner_only(tmp_path):
    env = Env("sqlite", tmp_path, None)
    env.state_dir = tmp_path / "new" / "state"
    cache = make_cache(env.conn())
    cache.put(IP, 720, STORABLE["enriched"])
    assert stat.S_IMODE(env.state_dir.stat().st_mode) == 0o700
    files = [p for p in env.state_dir.iterdir() if p.name.startswith("cache.sqlite3")]
    assert {p.name for p in files} >= {"cache.sqlite3", "cache.sqlite3-wal"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files), {p.name: oct(p.stat().st_mode) for p in files}


def test_an_existing_wider_cache_file_is_tightened(tmp_path):
    env = Env("sqlite", tmp_path, None)
    env.state_dir.mkdir(mode=0o700)
    (env.state_dir / "cache.sqlite3").touch(mode=0o644)
    os.chmod(env.state_dir / "cache.sqlite3", 0o644)
    make_cache(env.conn()).put(IP, 720, STORABLE["enriched"])
    assert stat.S_IMODE((env.state_dir / "cache.sqlite3").stat().st_mode) == 0o600


def test_expired_rows_are_purged_by_the_first_put_of_a_process(tmp_path):
    env = Env("sqlite", tmp_path, None)
    cache = make_cache(env.conn(), clock=env.clock)
    for i in range(20):
        cache.put(f"10.0.0.{i}", 720, STORABLE["not_found (404)"])
    assert env.stored(cache) == 20
    env.clock.now += TTL + 1
    make_cache(env.conn(), clock=env.clock).put(IP, 720, STORABLE["enriched"])
    assert env.stored(cache) == 1


def test_the_first_put_and_every_500th_after_it_purge_expired_rows(tmp_path):
    env = Env("sqlite", tmp_path, None)
    cache = make_cache(env.conn(cache={"ttl_seconds": 10}), clock=env.clock)
    cache.put("10.0.0.1", 720, STORABLE["not_found (404)"])  # put 1 purges (nothing yet)
    env.clock.now += 11
    for i in range(499):  # puts 2..500
        cache.put(f"10.1.{i // 256}.{i % 256}", 720, STORABLE["not_found (404)"])
    assert env.stored(cache) == 500  # the expired row is still there, though never served
    assert cache.get("10.0.0.1", 720) is None
    cache.put("10.2.0.1", 720, STORABLE["not_found (404)"])  # put 501
    assert env.stored(cache) == 500


def test_an_unusable_state_dir_makes_a_cache_that_only_misses(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    env = Env("sqlite", tmp_path, None)
    env.state_dir = blocker / "state"
    with caplog.at_level(logging.WARNING, logger="plugin.cache_stores"):
        cache = make_cache(env.conn())
        cache.put(IP, 720, STORABLE["enriched"])
        assert cache.get(IP, 720) is None
    assert any("unavailable" in r.getMessage() for r in caplog.records)


# --- the Redis store: keys and outages ----------------------------------------------------------------

def test_redis_keys_name_cloud_tenant_ip_and_look_back(redis_url):  # noqa: F811
    env = Env("redis", Path("/nonexistent"), redis_url)
    make_cache(env.conn(tenant_id=env.tenant.upper())).put("::ffff:10.1.2.3", 24, STORABLE["enriched"])
    assert redis.Redis.from_url(redis_url).exists(f"defender-ip:cache:global:{env.tenant}:10.1.2.3:24")


def test_an_unreachable_redis_is_a_miss_and_one_warning_without_the_url(caplog):
    url = f"redis://default:hunter2-Pa55@127.0.0.1:{free_port()}/0"  # nothing listens there
    env = Env("redis", Path("/nonexistent"), url)
    with caplog.at_level(logging.DEBUG, logger="plugin.cache_stores"):
        cache = make_cache(env.conn())
        for _ in range(3):
            assert cache.get(IP, 720) is None
            cache.put(IP, 720, STORABLE["enriched"])
        cache.close()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    text = caplog.text + "".join(str(r.args) for r in caplog.records)
    assert "hunter2" not in text and url not in text and "redis://" not in text


class FlakyClient:
    """A Redis client whose failures carry the URL in their text, as redis-py's sometimes do."""

    def __init__(self):
        self.calls = 0
        self.down = True
        self.data = {}

    def get(self, key):
        self.calls += 1
        if self.down:
            raise redis.exceptions.ConnectionError("Error connecting to redis://:hunter2@cache.example:6379")
        return self.data.get(key)

    def set(self, key, value, ex):
        self.calls += 1
        if self.down:
            raise redis.exceptions.TimeoutError("Timeout reading from redis://:hunter2@cache.example:6379")
        self.data[key] = value

    def close(self):
        pass


def test_a_failing_redis_is_skipped_for_a_while_then_tried_again(caplog):
    clock, client = FakeClock(), FlakyClient()
    cache = RedisCache("redis://ignored", "global:t", TTL, client=client, clock=clock, retry_after=5.0)
    with caplog.at_level(logging.DEBUG, logger="plugin.cache_stores"):
        assert cache.get(IP, 720) is None
        for _ in range(10):  # within the back-off: no round trip, no connect timeout per IP
            assert cache.get(IP, 720) is None
            cache.put(IP, 720, STORABLE["enriched"])
        assert client.calls == 1
        clock.now += 5
        client.down = False
        cache.put(IP, 720, STORABLE["enriched"])
        assert cache.get(IP, 720).stats.prevalence == 63515
    assert "hunter2" not in caplog.text and "ConnectionError" in caplog.text
    assert "available again" in caplog.text


# --- cheap to import ----------------------------------------------------------------------------------

def test_importing_the_cache_loads_no_heavy_dependency():
    code = ("import sys, plugin.cache, plugin.cache_stores; "
            "print(sorted(m for m in ('redis', 'requests', 'msal', 'jsonschema', 'plugin.config') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=60).stdout
    assert out.strip() == "[]"


def test_make_cache_refuses_an_unknown_backend_and_redis_without_a_url(tmp_path):
    from plugin.errors import ConfigError

    conn = Env("memory", tmp_path, None).conn()
    bad = dataclasses.replace(conn, quota=dataclasses.replace(conn.quota, backend="etcd"))
    with pytest.raises(ConfigError, match="backend"):
        make_cache(bad)
    no_url = dataclasses.replace(conn, quota=dataclasses.replace(conn.quota, backend="redis", redis_url=None))
    with pytest.raises(ConfigError, match="redis_url"):
        make_cache(no_url)
    assert isinstance(make_cache(conn), MemoryCache) and isinstance(make_cache(dataclasses.replace(
        conn, quota=dataclasses.replace(conn.quota, backend="sqlite"))), SQLiteCache)
