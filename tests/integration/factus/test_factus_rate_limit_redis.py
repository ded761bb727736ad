"""The shared rate limit (FACTUS_API.md Decision 5): several processes on one Redis stay under
one per-account limit together, and wait for a slot instead of failing."""

from __future__ import annotations

import bisect
import multiprocessing
import time

import pytest
import redis
from factus_procs import take_slots

from einvoice.factus.errors import RateLimitedError
from einvoice.factus.ratelimit import RedisRateLimiter

LIMIT, WINDOW = 10, 2


def test_three_processes_stay_under_one_shared_limit(factus_redis_url: str) -> None:
    # Given three worker processes sharing an account limited to 10 calls per 2 s
    start_at = time.time() + 3.0  # time for the spawned processes to import einvoice
    context = multiprocessing.get_context("spawn")

    # When each makes 10 calls as fast as the limiter lets it
    with context.Pool(3) as pool:
        per_process = pool.starmap(
            take_slots, [(factus_redis_url, 10, LIMIT, WINDOW, start_at)] * 3
        )

    # Then all 30 calls were made (the limiter waited, it did not fail)
    stamps = sorted(stamp for stamps in per_process for stamp in stamps)
    assert len(stamps) == 30
    # and no 2-second span holds more than 10 of them (0.1 s slack for the time a process
    # takes between being granted a slot and writing down the time)
    for i, stamp in enumerate(stamps):
        in_window = bisect.bisect_left(stamps, stamp + WINDOW - 0.1) - i
        assert in_window <= LIMIT, f"{in_window} calls within {WINDOW} s from call {i}"
    # and 30 calls at 10 per 2 s took at least two full windows after the first burst
    assert stamps[-1] - stamps[0] >= 2 * WINDOW - 0.1
    # and the limit did not starve anyone
    assert all(len(stamps) == 10 for stamps in per_process)


def test_a_full_window_makes_the_caller_wait_for_the_oldest_call_to_leave(
    factus_redis: redis.Redis,
) -> None:
    limiter = RedisRateLimiter(factus_redis, limit=2, window_seconds=1)
    started = time.monotonic()
    for _ in range(3):
        limiter.acquire("acct")
    assert 0.9 <= time.monotonic() - started < 2.0


def test_accounts_have_separate_limits(factus_redis: redis.Redis) -> None:
    limiter = RedisRateLimiter(factus_redis, limit=2, window_seconds=60, max_wait_seconds=0.2)
    for account in ("a", "a", "b", "b"):
        limiter.acquire(account)
    with pytest.raises(RateLimitedError):
        limiter.acquire("a")


def test_a_saturated_account_gives_up_after_the_maximum_wait(factus_redis: redis.Redis) -> None:
    # Given an account whose window is full for the next minute
    limiter = RedisRateLimiter(factus_redis, limit=2, window_seconds=60, max_wait_seconds=0.5)
    limiter.acquire("acct")
    limiter.acquire("acct")

    # When a third call would have to wait longer than allowed, it fails at once, transient,
    # saying how long the window still needs and that nothing was sent
    started = time.monotonic()
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("acct")
    assert time.monotonic() - started < 0.5
    assert caught.value.reason == "rate_limit_wait"
    assert caught.value.transient
    assert not caught.value.may_have_reached
    assert 55 <= caught.value.retry_after <= 60


def test_the_pace_spreads_an_accounts_requests_over_the_minute(factus_redis: redis.Redis) -> None:
    # Given an account with room for 80 requests a minute, paced at 2 per second
    limiter = RedisRateLimiter(factus_redis, limit=80, window_seconds=60, per_second=2)

    # When 6 requests are made as fast as the limiter lets them
    stamps = []
    for _ in range(6):
        limiter.acquire("acct")
        stamps.append(time.time())

    # Then no 1-second span holds more than 2 of them (0.05 s slack for writing the time down),
    # so the 6 took at least 2 s instead of going out at once
    for i, stamp in enumerate(stamps):
        assert bisect.bisect_left(stamps, stamp + 1 - 0.05) - i <= 2
    assert stamps[-1] - stamps[0] >= 1.9
    # and another account is not held back by this one's pace
    started = time.monotonic()
    limiter.acquire("other")
    limiter.acquire("other")
    assert time.monotonic() - started < 0.5
