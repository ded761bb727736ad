"""``check_system`` and ``account_budgets`` against live servers, and against a dead Redis.

What the console's overview shows: PostgreSQL and Redis answer, beat and a worker are alive (by
their heartbeats in Redis), and how much of each Factus account's minute is spent.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from einvoice.factus.ratelimit import RedisRateLimiter
from einvoice.services.system_health import (
    AccountBudget,
    account_budgets,
    beat_last_seen,
    check_system,
    stamp_beat,
    stamp_worker,
)
from einvoice.settings import load_settings


@pytest.mark.slow
def test_every_component_is_ok_while_a_worker_and_beat_run(
        make_pipeline: Any, engine: Engine, redis_url: str, redis_client: redis.Redis) -> None:
    # Given a worker and beat running
    pipeline = make_pipeline(beat=True)
    deadline = time.monotonic() + 20
    while beat_last_seen(redis_client) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    # When the console asks
    health = check_system(load_settings(_env_file=None, redis_url=redis_url), engine)
    # Then all four are ok, and beat and the worker were seen a moment ago
    assert health.ok, health
    assert [c.name for c in health.components()] == ["postgres", "redis", "beat", "workers"]
    assert health.beat.age_seconds is not None
    assert health.beat.age_seconds < 10
    assert health.workers.detail.startswith("1 worker: worker0@")
    # And once the worker stops (warm shutdown), it is gone at once
    pipeline.launcher.started[0].stop()
    after = check_system(load_settings(_env_file=None, redis_url=redis_url), engine)
    assert not after.workers.ok
    assert after.beat.ok


def test_beat_and_workers_are_not_ok_when_never_seen_or_seen_too_long_ago(
        engine: Engine, redis_url: str, redis_client: redis.Redis) -> None:
    settings = load_settings(_env_file=None, redis_url=redis_url)
    # Given no heartbeat at all
    health = check_system(settings, engine)
    assert (health.postgres.ok, health.redis.ok) == (True, True)
    assert (health.beat.ok, health.beat.detail) == (False, "never seen: no heartbeat in Redis")
    assert (health.workers.ok, health.workers.detail) == (False, "no worker seen")
    # Given beat last seen 5 minutes ago, and one worker a minute ago and another just now
    now = time.time()
    stamp_beat(redis_client, now - 300)
    stamp_worker(redis_client, "celery@old", now - 60)
    stamp_worker(redis_client, "celery@new", now)
    health = check_system(settings, engine)
    # Then beat is down, and one worker is alive
    assert not health.beat.ok
    assert health.beat.age_seconds is not None
    assert health.beat.age_seconds >= 300
    assert (health.workers.ok, health.workers.detail) == (True, "1 worker: celery@new")


@pytest.fixture
def silent_redis() -> Iterator[str]:
    """A TCP port that accepts connections and never answers: a Redis that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()


def test_a_hanging_redis_is_reported_not_ok_within_a_bounded_time(
        engine: Engine, silent_redis: str) -> None:
    started = time.monotonic()
    health = check_system(load_settings(_env_file=None, redis_url=silent_redis), engine)
    took = time.monotonic() - started
    assert health.postgres.ok
    assert not health.redis.ok
    assert health.redis.detail.startswith("unreachable: ")
    assert not health.beat.ok
    assert not health.workers.ok
    assert took < 2.0, took


def test_account_budgets_show_each_accounts_minute_without_taking_a_slot(
        redis_url: str, redis_client: redis.Redis) -> None:
    # Given the workers' limiter took three slots for the default account, one for another
    limiter = RedisRateLimiter.per_minute(redis_client, 80)
    for _ in range(3):
        limiter.acquire("default")
    limiter.acquire("7d3e0c1a-0000-4000-8000-000000000001")
    settings = load_settings(_env_file=None, redis_url=redis_url)
    # When the console reads the budgets twice
    first = account_budgets(settings)
    second = account_budgets(settings)
    # Then each account's use shows, and reading it took nothing
    assert first == second == [
        AccountBudget("7d3e0c1a-0000-4000-8000-000000000001", 1, 80),
        AccountBudget("default", 3, 80),
    ]
    assert limiter.remaining("default") == 77
