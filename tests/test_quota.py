"""Window arithmetic of the in-process quota, with an injected clock."""

import pytest

from plugin.config import QuotaSettings, Window
from plugin.quota import MemoryQuota


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def make(limits=((10, 1.0), (30, 5.0)), share=1.0, lanes=None):
    clock = Clock()
    settings = QuotaSettings(backend="memory", share=share, limits=tuple(Window(c, p) for c, p in limits),
                             **({"lanes": lanes} if lanes else {}))
    return MemoryQuota(settings, clock), clock


def take_all(quota, lane="analyst"):
    taken = 0
    while quota.try_acquire(lane) == 0:
        taken += 1
    return taken


@pytest.mark.parametrize("calls, share, cap", [(100, 0.95, 95), (1500, 0.95, 1425), (10, 0.95, 9), (1, 0.5, 1)])
def test_the_cap_is_floor_of_calls_times_share_and_at_least_one(calls, share, cap):
    quota, _ = make(limits=((calls, 60.0),), share=share)
    assert take_all(quota) == cap


def test_the_short_window_frees_a_slot_exactly_when_its_oldest_call_leaves():
    quota, clock = make()
    assert take_all(quota) == 10
    clock.now += 0.25
    assert quota.try_acquire("analyst") == pytest.approx(0.75)
    clock.now += 0.75
    assert quota.try_acquire("analyst") == 0


def test_the_long_window_binds_when_the_short_one_has_room():
    quota, clock = make()
    for _ in range(3):
        assert take_all(quota) == 10
        clock.now += 1.0
    # 30 calls in the last 3 s: the 5 s window is full although the 1 s window is empty.
    assert quota.try_acquire("analyst") == pytest.approx(2.0)
    clock.now += 2.0
    assert take_all(quota) == 10


def test_lanes_stop_at_their_share_of_the_cap_and_analysts_get_the_rest():
    quota, _ = make(limits=((100, 60.0),), share=0.95)
    assert take_all(quota, "scheduled") == 76  # floor(95 * 0.8)
    assert take_all(quota, "playbook") == 85 - 76  # floor(95 * 0.9)
    assert take_all(quota, "analyst") == 95 - 85


def test_a_pause_after_a_429_stops_every_lane_until_it_ends():
    quota, clock = make()
    quota.pause(3.0)
    for lane in ("analyst", "playbook", "scheduled"):
        assert quota.try_acquire(lane) == pytest.approx(3.0)
    clock.now += 3.0
    assert quota.try_acquire("analyst") == 0


def test_state_reports_used_left_and_cooldown_per_window():
    quota, clock = make(limits=((10, 1.0), (30, 5.0)))
    for _ in range(4):
        quota.try_acquire("analyst")
    quota.pause(2.0)
    state = quota.state("analyst")
    assert state["cooldown_seconds"] == 2.0
    assert [(w["cap"], w["used"], w["left"]) for w in state["windows"]] == [(10, 4, 6), (30, 4, 26)]
