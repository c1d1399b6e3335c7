"""Retry-After parsing and backoff, as tables of inputs and expected waits."""

import random
from datetime import datetime, timezone

import pytest

from plugin.retry import MAX_RETRY_AFTER_SECONDS, RetryPolicy, parse_retry_after

NOW = datetime(2026, 12, 4, 16, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "header, expected",
    [
        ("3", 3.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("Fri, 04 Dec 2026 16:00:05 GMT", 5.0),
        ("Fri, 04 Dec 2026 15:59:00 GMT", 0.0),  # a date in the past means now
        ("86400", MAX_RETRY_AFTER_SECONDS),  # an absurd wait is capped
        ("-5", None),
        ("soon", None),
        ("", None),
        ("１２", None),  # full-width digits are not delta-seconds
        (None, None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(header, expected):
    assert parse_retry_after(header, NOW) == expected


@pytest.mark.parametrize("failures, ceiling", [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)])
def test_backoff_is_jittered_below_a_capped_exponential_ceiling(failures, ceiling):
    policy = RetryPolicy()
    waits = [policy.backoff(failures, random.Random(seed)) for seed in range(200)]
    assert all(0 <= wait <= ceiling for wait in waits)
    assert max(waits) > ceiling * 0.8  # jitter spreads over the range, not a constant


@pytest.mark.parametrize("status, retry", [(500, True), (502, True), (503, True), (504, True),
                                           (400, False), (401, False), (403, False), (404, False), (429, False)])
def test_only_transient_server_errors_are_retried_with_backoff(status, retry):
    assert RetryPolicy().should_retry_status(status) is retry
