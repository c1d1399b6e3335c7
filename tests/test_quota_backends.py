"""The three quota stores behind one interface: window arithmetic on an injected clock (memory, sqlite),
the same rules on a real Redis (its server clock), sharing by budget key, shared 429 pauses, and
processes hammering one SQLite file or one Redis without ever exceeding a window."""

from __future__ import annotations

import bisect
import dataclasses
import math
import multiprocessing
import os
import stat
import time
import uuid

import pytest
import redis
from quota_hammer import hammer, open_quota, pause_budget
from redis_server import free_port, redis_url  # noqa: F401  (the fixture)
from support import FakeClock, connection_doc

from plugin.config import QuotaSettings, Window, load_connection
from plugin.errors import ConfigError, ServiceUnavailableError
from plugin.quota import MemoryQuota, make_quota
from plugin.quota_redis import RedisQuota
from plugin.quota_sqlite import SQLiteQuota

LANES = ("analyst", "playbook", "scheduled")


def settings(limits=((10, 1.0), (30, 5.0)), share=1.0, lanes=None, backend="memory") -> QuotaSettings:
    return QuotaSettings(backend=backend, share=share, limits=tuple(Window(c, p) for c, p in limits),
                         **({"lanes": {"analyst": 1.0, **lanes}} if lanes else {}))


def new_key() -> str:
    return f"global:{uuid.uuid4()}:client"


@pytest.fixture(params=["memory", "sqlite"])
def clocked(request, tmp_path):
    """make(limits, share, lanes) -> quota on an injected clock; `.clock` moves it."""
    clock = FakeClock(start=1_700_000_000.0)  # wall-clock-like, as sqlite's default clock is

    def make(**kwargs):
        s = settings(backend=request.param, **kwargs)
        if request.param == "memory":
            return MemoryQuota(s, clock)
        return SQLiteQuota(s, tmp_path / "quota.sqlite3", new_key(), clock=clock)

    make.clock = clock
    make.backend = request.param
    return make


def take_all(quota, lane="analyst") -> int:
    taken = 0
    while quota.try_acquire(lane) == 0:
        taken += 1
    return taken


# --- window arithmetic on an injected clock (memory and sqlite) ---------------------------------

def test_the_short_window_frees_a_slot_exactly_when_its_oldest_send_leaves(clocked):
    quota = clocked()
    assert take_all(quota) == 10
    clocked.clock.now += 0.25
    assert quota.try_acquire("analyst") == pytest.approx(0.75)
    clocked.clock.now += 0.75
    assert quota.try_acquire("analyst") == 0


def test_the_long_window_binds_when_the_short_one_has_room(clocked):
    quota = clocked()
    for _ in range(3):
        assert take_all(quota) == 10
        clocked.clock.now += 1.0
    assert quota.try_acquire("analyst") == pytest.approx(2.0)
    clocked.clock.now += 2.0
    assert take_all(quota) == 10


def test_when_both_windows_are_full_the_wait_is_the_longer_one_and_a_refusal_takes_nothing(clocked):
    # pyrate-limiter reports 0.875 s here (its first full window) and refuses the retry.
    quota = clocked(limits=((10, 1.0), (15, 5.0)))
    assert [quota.try_acquire("analyst") for _ in range(5)] == [0] * 5
    clocked.clock.now += 1.125  # times exact in binary, so the clock lands exactly on the edge
    assert take_all(quota) == 10  # now both windows are full
    clocked.clock.now += 0.125
    for _ in range(3):  # the 1 s window frees in 0.875 s; the first sends leave the 5 s window in 3.75 s
        assert quota.try_acquire("analyst") == 3.75
    clocked.clock.now += 3.75
    assert quota.try_acquire("analyst") == 0


def test_lanes_stop_at_their_marks_in_every_window_and_analysts_get_the_rest(clocked):
    quota = clocked(limits=((100, 60.0), (1500, 3600.0)), share=0.95)
    assert take_all(quota, "scheduled") == 76  # floor(95 * 0.8)
    assert take_all(quota, "playbook") == 85 - 76  # floor(95 * 0.9): lanes count every send of the budget
    assert take_all(quota, "analyst") == 95 - 85
    clocked.clock.now += 10
    assert quota.try_acquire("scheduled") == pytest.approx(50.0)  # its 76th-newest send leaves first
    # The long window: scheduled stops at 8 of 10 per second and 24 of 30 per 5 s; analysts fill the rest.
    quota = clocked(limits=((10, 1.0), (30, 5.0)), lanes={"scheduled": 0.8, "playbook": 0.9})
    for _ in range(3):
        assert take_all(quota, "scheduled") == 8
        clocked.clock.now += 1.0
    assert quota.try_acquire("scheduled") == pytest.approx(2.0)
    assert take_all(quota, "analyst") == 6


def test_a_pause_stops_every_lane_is_extended_never_shortened_and_adds_to_a_window_wait(clocked):
    quota = clocked()
    quota.pause(3.0)
    for lane in LANES:
        assert quota.try_acquire(lane) == pytest.approx(3.0)
    clocked.clock.now += 1.0
    quota.pause(1.0)
    assert quota.try_acquire("analyst") == pytest.approx(2.0)
    quota.pause(5.0)
    assert quota.try_acquire("analyst") == pytest.approx(5.0)
    clocked.clock.now += 5.0
    assert take_all(quota) == 10
    quota.pause(0.25)
    assert quota.try_acquire("analyst") == pytest.approx(1.0)  # the window's wait is the longer one


def test_a_settled_permit_counts_from_when_its_answer_came_back(clocked):
    # The service counts a call when it arrives; a permit taken at 0 whose answer came back
    # at 0.4 may have arrived as late as 0.4, so its slot frees at 1.4, not at 1.0.
    quota = clocked(limits=((2, 1.0),))
    assert quota.try_acquire("analyst", "first") == 0
    assert quota.try_acquire("analyst", "second") == 0
    clocked.clock.now += 0.4
    quota.settle("first")
    quota.settle("unknown")  # settling a permit the store no longer holds changes nothing
    clocked.clock.now += 0.6
    assert quota.try_acquire("analyst") == 0  # "second" (stamped 0) has left the window
    assert quota.try_acquire("analyst") == pytest.approx(0.4)
    clocked.clock.now += 0.4
    assert quota.try_acquire("analyst") == 0


def test_threads_sharing_one_quota_take_exactly_the_cap(clocked):
    from concurrent.futures import ThreadPoolExecutor

    quota = clocked(limits=((40, 60.0), (100, 3600.0)))
    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(lambda _: take_all(quota), range(8))) == 40


def test_state_has_the_memory_shape_with_the_backend_name(clocked):
    quota = clocked(limits=((10, 1.0), (30, 5.0)))
    for _ in range(4):
        quota.try_acquire("scheduled")
    quota.pause(2.0)
    state = quota.state("playbook")
    reference = MemoryQuota(settings(), FakeClock()).state("playbook")
    assert state.keys() == reference.keys() and state["windows"][0].keys() == reference["windows"][0].keys()
    assert state["backend"] == clocked.backend and state["lane"] == "playbook"
    assert state["cooldown_seconds"] == 2.0
    assert [(w["cap"], w["used"], w["left"], w["next_free_in_seconds"]) for w in state["windows"]] == [(9, 4, 5, 0.0), (27, 4, 23, 0.0)]


# --- SQLite: one file, many quota objects and processes ----------------------------------------

def test_one_sqlite_file_shares_a_budget_key_and_separates_others(tmp_path):
    clock = FakeClock(start=1_700_000_000.0)
    s = settings(limits=((5, 60.0),))
    key = new_key()
    first, second = (SQLiteQuota(s, tmp_path / "q.sqlite3", key, clock=clock) for _ in range(2))
    other = SQLiteQuota(s, tmp_path / "q.sqlite3", new_key(), clock=clock)
    assert [first.try_acquire("analyst") for _ in range(3)] == [0, 0, 0]
    assert take_all(second) == 2 and take_all(first) == 0  # 5 between them: full for both
    assert take_all(other) == 5
    second.pause(10)
    assert first.try_acquire("analyst") == pytest.approx(60.0)  # the window's wait is longer than the pause
    assert other.try_acquire("analyst") == pytest.approx(60.0)  # its own window; the pause is not its


def test_two_connections_of_one_app_share_and_two_apps_do_not(tmp_path):
    clock = FakeClock(start=1_700_000_000.0)
    quota = {"backend": "sqlite", "limits": [{"calls": 4, "per_seconds": 60}], "share": 1.0}
    app = load_connection(connection_doc(state_dir=str(tmp_path), quota=quota))
    same_app = load_connection(connection_doc(state_dir=str(tmp_path), quota=quota, region="eu",
                                              tenant_id=app.tenant_id.upper(), client_secret="another-secret-value"))
    other_app = load_connection(connection_doc(state_dir=str(tmp_path), quota=quota,
                                               client_id="99999999-7777-8888-9999-000000000000"))
    a, b, c = (make_quota(conn, clock=clock) for conn in (app, same_app, other_app))
    assert isinstance(a, SQLiteQuota)
    assert take_all(a) == 4 and take_all(b) == 0
    assert take_all(c) == 4
    assert (tmp_path / "quota.sqlite3").is_file()


def test_the_sqlite_budget_survives_a_restart_and_old_sends_are_deleted(tmp_path):
    clock = FakeClock(start=1_700_000_000.0)
    s, key, path = settings(limits=((3, 1.0), (5, 10.0))), new_key(), tmp_path / "q.sqlite3"
    quota = SQLiteQuota(s, path, key, clock=clock)
    assert take_all(quota) == 3
    quota.pause(4.0)
    quota.close()
    again = SQLiteQuota(s, path, key, clock=clock)
    assert again.state("analyst")["windows"][1]["used"] == 3
    assert again.try_acquire("analyst") == pytest.approx(4.0)
    clock.now += 10.0
    assert again.try_acquire("analyst") == 0
    rows = again._file.connection().execute("SELECT COUNT(*) FROM quota_sends WHERE budget = ?", (key,)).fetchone()[0]
    assert rows == 1  # the sends older than the longest window are gone
    assert again._file.connection().execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_make_quota_picks_the_backend_and_creates_a_private_state_dir(tmp_path):
    conn = load_connection(connection_doc(state_dir=str(tmp_path / "new" / "state"), quota={"backend": "sqlite"}))
    quota = make_quota(conn)
    assert isinstance(quota, SQLiteQuota) and quota.state("analyst")["backend"] == "sqlite"
    assert stat.S_IMODE(os.stat(tmp_path / "new" / "state").st_mode) == 0o700
    assert (tmp_path / "new" / "state" / "quota.sqlite3").is_file()
    memory = dataclasses.replace(conn, quota=dataclasses.replace(conn.quota, backend="memory"))
    assert isinstance(make_quota(memory, clock=FakeClock()), MemoryQuota)
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(ConfigError, match="state_dir"):
        make_quota(dataclasses.replace(conn, state_dir=str(blocked / "state")))
    no_url = dataclasses.replace(conn, quota=dataclasses.replace(conn.quota, backend="redis", redis_url=None))
    with pytest.raises(ConfigError, match="redis_url"):
        make_quota(no_url)
    with pytest.raises(ValueError, match="server's clock"):
        make_quota(dataclasses.replace(no_url, quota=dataclasses.replace(no_url.quota, redis_url="redis://x")), clock=FakeClock())


# --- Redis: a real server, its clock -----------------------------------------------------------

def server_time(url) -> float:
    seconds, micros = redis.Redis.from_url(url).time()
    return seconds + micros / 1e6


def test_redis_waits_are_exact_on_the_server_clock(redis_url):  # noqa: F811
    quota = RedisQuota(settings(limits=((3, 1.0),)), redis_url, new_key())
    assert quota.try_acquire("analyst") == 0
    first = quota.last_permit_at
    assert take_all(quota) == 2
    before = server_time(redis_url)
    wait = quota.try_acquire("analyst")
    after = server_time(redis_url)
    assert first + 1.0 - after <= wait <= first + 1.0 - before
    state = quota.state("analyst")
    assert state["backend"] == "redis" and (state["windows"][0]["used"], state["windows"][0]["left"]) == (3, 0)


def test_redis_reports_the_longer_wait_when_both_windows_are_full(redis_url):  # noqa: F811
    quota = RedisQuota(settings(limits=((3, 0.5), (4, 2.0))), redis_url, new_key())
    assert quota.try_acquire("analyst") == 0
    first = quota.last_permit_at
    time.sleep(0.6)
    assert take_all(quota) == 3
    before = server_time(redis_url)
    wait = quota.try_acquire("analyst")
    assert first + 2.0 - server_time(redis_url) <= wait <= first + 2.0 - before
    assert wait > 0.8  # the 0.5 s window would have said < 0.5


def test_redis_lanes_and_budget_keys(redis_url):  # noqa: F811
    s = settings(limits=((10, 60.0),), lanes={"scheduled": 0.5, "playbook": 0.8})
    key = new_key()
    host_a, host_b = RedisQuota(s, redis_url, key), RedisQuota(s, redis_url, key)
    assert take_all(host_a, "scheduled") == 5
    assert take_all(host_b, "playbook") == 3
    assert take_all(host_a, "analyst") == 2
    assert take_all(RedisQuota(s, redis_url, new_key())) == 10


def test_redis_pause_is_extended_never_shortened_and_keys_expire(redis_url):  # noqa: F811
    quota = RedisQuota(settings(limits=((3, 1.0), (5, 4.0))), redis_url, new_key())
    assert quota.try_acquire("analyst") == 0
    quota.pause(2.0)
    quota.pause(0.5)
    assert 1.9 < quota.try_acquire("scheduled") <= 2.0
    assert 1.9 < quota.state("analyst")["cooldown_seconds"] <= 2.0
    client = redis.Redis.from_url(redis_url)
    sends, cooldown = quota.keys
    assert 0 < client.pttl(sends) <= 4001 and 1900 < client.pttl(cooldown) <= 2001


def test_redis_settle_restamps_a_permit_on_the_server_clock(redis_url):  # noqa: F811
    quota = RedisQuota(settings(limits=((1, 1.0),)), redis_url, new_key())
    assert quota.try_acquire("analyst", "p1") == 0
    time.sleep(0.2)
    quota.settle("p1")
    wait = quota.try_acquire("analyst")
    # Counted from the settle: about 1.0 s; counted from the permit it would be about 0.8 s.
    assert wait == pytest.approx(1.0, abs=0.05)


def test_redis_survives_script_flush(redis_url):  # noqa: F811
    quota = RedisQuota(settings(limits=((5, 60.0),)), redis_url, new_key())
    assert quota.try_acquire("analyst") == 0
    redis.Redis.from_url(redis_url).script_flush()
    assert quota.try_acquire("analyst") == 0
    redis.Redis.from_url(redis_url).script_flush()
    assert quota.state("analyst")["windows"][0]["used"] == 2


def test_an_unreachable_redis_is_service_unavailable_without_echoing_the_url():
    url = f"redis://:hunter2-password@127.0.0.1:{free_port()}/0"
    with pytest.raises(ServiceUnavailableError) as caught:
        RedisQuota(settings(), url, new_key()).try_acquire("analyst")
    assert "hunter2" not in str(caught.value)


# --- many processes ----------------------------------------------------------------------------

LIMITS = ((20, 1.0), (50, 3.0))  # share 0.95: caps 19 per 1 s and 47 per 3 s
SECONDS = 3.5


def greedy_ideal(limits, share, seconds) -> int:
    """The most sends the windows allow in `seconds`: take each slot the moment it frees."""
    clock = FakeClock(0.0)
    quota = MemoryQuota(settings(limits=limits, share=share), clock)
    taken = 0
    while clock.now < seconds:
        wait = quota.try_acquire("analyst")
        taken += wait == 0
        clock.now += wait
    return taken


def hammer_from_processes(backend, target, key, processes=6) -> list[float]:
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(processes), ctx.Queue()
    workers = [ctx.Process(target=hammer, args=(backend, target, key, LIMITS, SECONDS, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    stamps = sorted(t for _ in workers for t in results.get(timeout=60))
    for worker in workers:
        worker.join(10)
        assert worker.exitcode == 0
    return stamps


def assert_never_over_the_cap_and_close_to_it(stamps):
    for calls, per in LIMITS:
        cap = math.floor(calls * 0.95)
        # Every sliding window (t - per, t] that ends on a send; the fullest ones end on one.
        worst = max(i + 1 - bisect.bisect_right(stamps, t - per) for i, t in enumerate(stamps))
        assert worst <= cap, f"{worst} sends in one {per} s window, cap {cap}"
    ideal = greedy_ideal(LIMITS, 0.95, SECONDS)
    assert len(stamps) >= 0.9 * ideal, f"{len(stamps)} sends, the windows allow {ideal}"


def test_six_processes_on_one_sqlite_file_never_exceed_a_window(tmp_path):
    stamps = hammer_from_processes("sqlite", str(tmp_path / "quota.sqlite3"), new_key())
    assert_never_over_the_cap_and_close_to_it(stamps)


def test_six_processes_on_one_redis_never_exceed_a_window(redis_url):  # noqa: F811
    stamps = hammer_from_processes("redis", redis_url, new_key())
    assert_never_over_the_cap_and_close_to_it(stamps)


@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_a_pause_in_one_process_stops_the_others(backend, tmp_path, request):
    target = str(tmp_path / "quota.sqlite3") if backend == "sqlite" else request.getfixturevalue("redis_url")
    key, limits = new_key(), ((10, 1.0),)
    here = open_quota(backend, target, key, limits)
    assert here.try_acquire("analyst") == 0
    child = multiprocessing.get_context("spawn").Process(target=pause_budget, args=(backend, target, key, limits, 30.0))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert 25 < here.try_acquire("analyst") <= 30
    assert 25 < open_quota(backend, target, key, limits).state("scheduled")["cooldown_seconds"] <= 30
