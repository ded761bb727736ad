"""Token renewal under concurrency (FACTUS_API.md Decision 2): threads of two worker processes
that need a token at the same moment cause exactly one grant at Factus (the simulator counts
them), and a rotating refresh token is never spent twice."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import redis
from conftest import sandbox_account, sandbox_grants
from factus_procs import call_company_in_threads

from einvoice.crypto import SecretBox
from einvoice.factus.client import FactusClient
from einvoice.factus.ratelimit import NoRateLimit
from einvoice.factus.tokens import RedisRenewalLocks, RedisTokenStore, StoredToken
from einvoice.sandbox.server import SandboxServer

PROCESSES, THREADS = 2, 5


@pytest.fixture
def secret_key() -> str:
    """A fresh EINVOICE_SECRET_KEY."""
    return SecretBox.generate_key()


def _run_workers(sandbox: SandboxServer, redis_url: str, secret_key: str) -> list[str]:
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    results = context.Queue()
    workers = [
        context.Process(
            target=call_company_in_threads,
            args=(sandbox.base_url, redis_url, secret_key, THREADS, start, results),
        )
        for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    start.set()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    assert {pid for pid, _ in outcomes} == {w.pid for w in workers}
    return [outcome for _, per_process in outcomes for outcome in per_process]


def test_two_processes_needing_a_first_token_log_in_once(
    sandbox_clean: SandboxServer, factus_redis_url: str, secret_key: str
) -> None:
    # Given an empty token store and a slow token endpoint (wide race window)
    sandbox_clean.set_faults(latency_ms=300)

    # When 2 processes × 5 threads call Factus at the same moment
    outcomes = _run_workers(sandbox_clean, factus_redis_url, secret_key)

    # Then every call succeeded with a single password grant between them
    assert outcomes == ["901724254"] * PROCESSES * THREADS
    assert sandbox_grants(sandbox_clean) == {"200": 1}


def test_an_expiring_token_is_refreshed_once_and_the_new_refresh_token_kept(
    sandbox_clean: SandboxServer, factus_redis: redis.Redis, factus_redis_url: str, secret_key: str
) -> None:
    # Given a stored token pair that is due for renewal
    store = RedisTokenStore(factus_redis, SecretBox(secret_key))
    with httpx.Client() as http:
        FactusClient(
            sandbox_account(sandbox_clean.base_url),
            http=http,
            limiter=NoRateLimit(),
            token_store=store,
            renewal_locks=RedisRenewalLocks(factus_redis),
        ).company()
    key = sandbox_account(sandbox_clean.base_url).token_key
    first = store.load(key)
    assert first is not None
    assert first.refresh_token
    past = datetime.now(UTC) - timedelta(seconds=1)
    store.save(
        key, StoredToken(first.access_token, first.refresh_token, first.expires_at, past)
    )
    sandbox_clean.set_faults(latency_ms=300)

    # When 2 processes × 5 threads need it at the same moment
    outcomes = _run_workers(sandbox_clean, factus_redis_url, secret_key)

    # Then all calls succeeded after exactly one more grant (the refresh), none refused (a
    # second refresh with the spent token would be a 400 invalid_grant)
    assert outcomes == ["901724254"] * PROCESSES * THREADS
    assert sandbox_grants(sandbox_clean) == {"200": 2}
    # and the rotated refresh token is the one stored now, and it works
    second = store.load(key)
    assert second is not None
    assert second.refresh_token not in (None, first.refresh_token)
    assert second.access_token != first.access_token
    with httpx.Client() as http:
        response = http.post(
            sandbox_clean.base_url + "/oauth/token",
            data={
                "grant_type": "refresh_token",
                "client_id": "sandbox-client",
                "client_secret": "sandbox-secret",
                "refresh_token": second.refresh_token,
            },
            headers={"Accept": "application/json"},
        )
    assert response.status_code == 200


_HOLD_AND_SLEEP = """
import sys, time, redis
from einvoice.factus.tokens import RedisRenewalLocks
locks = RedisRenewalLocks(redis.Redis.from_url(sys.argv[1]), timeout=120, lease=1.0)
with locks.hold("acct"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_renewal_lock_left_by_a_killed_worker_frees_itself_after_its_lease(
    redis_url: str, redis_client: redis.Redis,
) -> None:
    """A worker SIGKILLed mid-renewal never releases the lock: while it lived, its watchdog
    kept the lock; once dead, the next renewal waits about one lease (1 s here), not the
    renewal's whole timeout (120 s here), and meanwhile a waiter gives up with a transient
    error."""
    from einvoice.factus.errors import TokenUnavailableError

    holder = subprocess.Popen([sys.executable, "-c", _HOLD_AND_SLEEP, redis_url],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        time.sleep(2.5)  # two and a half leases: alive, its watchdog keeps the lock
        impatient = RedisRenewalLocks(redis_client, timeout=120, blocking_timeout=0.2, lease=1.0)
        with pytest.raises(TokenUnavailableError), impatient.hold("acct"):
            pass
    finally:
        holder.kill()
        holder.wait()
    killed = time.monotonic()
    patient = RedisRenewalLocks(redis_client, timeout=120, blocking_timeout=30, lease=1.0)
    with patient.hold("acct"):
        waited = time.monotonic() - killed
    assert waited < 1.5


def test_a_renewal_that_hangs_keeps_its_lock_no_longer_than_the_timeout(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture,
) -> None:
    """A holder that is alive but stuck (a Factus call that never ends) keeps the lock for the
    renewal's ``timeout``, not forever: the watchdog stops extending it. Its late release only
    logs."""
    from einvoice.factus.errors import TokenUnavailableError

    stuck = RedisRenewalLocks(redis_client, timeout=2.0, lease=0.5)
    started = time.monotonic()
    with stuck.hold("acct"):
        time.sleep(1.2)  # over two leases: still held
        with pytest.raises(TokenUnavailableError), \
                RedisRenewalLocks(redis_client, blocking_timeout=0.1).hold("acct"):
            pass
        with RedisRenewalLocks(redis_client, blocking_timeout=5.0).hold("acct"):
            waited = time.monotonic() - started
    assert 1.8 < waited < 3.0
    assert "expired before release" in caplog.text

