"""Code that the Factus integration tests run in separate processes (spawned, so it must be
importable by module name)."""

from __future__ import annotations

import time

import redis

from einvoice.factus.ratelimit import RedisRateLimiter


def take_slots(redis_url: str, count: int, limit: int, window: int, start_at: float) -> list[float]:
    """Wait until ``start_at`` (epoch seconds), then take ``count`` slots of a shared limiter of
    ``limit`` per ``window`` seconds; return the time each slot was granted."""
    client = redis.Redis.from_url(redis_url)
    limiter = RedisRateLimiter(client, limit=limit, window_seconds=window, max_wait_seconds=60)
    time.sleep(max(start_at - time.time(), 0.0))
    stamps = []
    for _ in range(count):
        limiter.acquire("shared-account")
        stamps.append(time.time())
    client.close()
    return stamps
