"""Code that the Factus integration tests run in separate processes (spawned, so it must be
importable by module name)."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import redis
from pydantic import SecretStr

from einvoice.crypto import SecretBox
from einvoice.factus.client import FactusClient
from einvoice.factus.errors import FactusError
from einvoice.factus.ratelimit import NoRateLimit, RedisRateLimiter
from einvoice.factus.tokens import FactusAccount, RedisRenewalLocks, RedisTokenStore


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


def call_company_in_threads(
    base_url: str,
    redis_url: str,
    secret_key: str,
    threads: int,
    start: Any,
    results: Any,
) -> None:
    """One worker process: ``threads`` threads of one :class:`FactusClient` (tokens in Redis,
    encrypted, renewal under the Redis lock) call ``GET /v1/company`` at the same moment, once
    every process has reached the ``start`` barrier. Puts ``(pid, [nit or error reason, ...])``
    on ``results``."""
    client = redis.Redis.from_url(redis_url)
    account = FactusAccount(
        key="default",
        environment="sandbox",
        base_url=base_url,
        client_id="sandbox-client",
        client_secret=SecretStr("sandbox-secret"),
        username="sandbox@einvoice.test",
        password=SecretStr("sandbox-password"),
    )
    with httpx.Client() as http:
        factus = FactusClient(
            account,
            http=http,
            limiter=NoRateLimit(),
            token_store=RedisTokenStore(client, SecretBox(secret_key)),
            renewal_locks=RedisRenewalLocks(client, timeout=30, blocking_timeout=30),
        )
        barrier = threading.Barrier(threads)

        def one() -> str:
            barrier.wait()
            try:
                return factus.company().nit or ""
            except FactusError as exc:
                return exc.reason

        start.wait(timeout=60)
        with ThreadPoolExecutor(threads) as pool:
            outcomes = list(pool.map(lambda _: one(), range(threads)))
    client.close()
    results.put((os.getpid(), outcomes))
