"""Client-side rate limit per Factus account, shared by every worker process through Redis.

FACTUS_API.md Decision 5 and §9: Factus allows 80 requests per minute per user and answers 429
beyond that; every call counts, token calls included. A 429 should be rare, not the throttle, so
each request first takes a slot here, and **waits** for one when the window is full instead of
failing.

Built on the ``limits`` library: :class:`limits.strategies.MovingWindowRateLimiter` over
:class:`limits.storage.RedisStorage`. Its Redis Lua script checks and records a hit atomically, so
processes cannot both take the last slot; the moving window (a list of hit timestamps) guarantees
no 60-second span ever holds more than the limit, which a fixed window does not (80 at 0:59 and
80 at 1:01 would pass). ``limits`` has no blocking acquire, so :meth:`RedisRateLimiter.acquire`
loops: try a hit; when refused, read the window (``get_window_stats`` gives the time the oldest
hit leaves it) and sleep until then, plus a little jitter so waiting processes do not all retry
in the same millisecond.

A second, one-second moving window paces the requests (``per_second``, 2 by default for 80 per
minute): without it an account spends its whole minute in the first seconds and then waits, and
every request in flight when one comes back "pending at DIAN" gets a 409 (FACTUS_API.md §5.3;
the chaos run showed hundreds of them). Paced, an account has about one other request in flight
at any time, and its minute's 80 requests go out over 40 s.

Caveat: ``limits`` stamps hits with each client's clock (``time.time()``), so the hosts of the
workers need synchronised clocks (NTP); skew of a second lets a few extra calls through at most.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

import redis
from limits import RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from einvoice import metrics
from einvoice.factus import deadline
from einvoice.factus.errors import RateLimitedError

logger = logging.getLogger("einvoice.factus")


class RateLimiter(Protocol):
    """Something that lets a request for an account go ahead, waiting if needed."""

    def acquire(self, account_key: str) -> float:
        """Return when one request for ``account_key`` may be sent.

        Returns:
            The seconds spent waiting for the slot (0.0 when one was free).
        Raises:
            RateLimitedError: when no slot frees up within the limiter's maximum wait.
        """
        ...


class NoRateLimit:
    """A :class:`RateLimiter` that never waits (unit tests, benchmarks of raw throughput)."""

    def acquire(self, account_key: str) -> float:
        """Return at once: 0.0 s waited."""
        return 0.0


class RedisRateLimiter:
    """At most ``limit`` requests per ``window_seconds`` per account key, across processes.

    Args:
        client: a ``redis.Redis`` client; its connection pool is reused.
        limit: requests allowed per window (``factus_rate_limit_per_minute``, default 80).
        window_seconds: the window length in whole seconds (60 for "per minute").
        max_wait_seconds: the longest :meth:`acquire` waits before raising
            :class:`RateLimitedError` (transient), so a worker does not sit on a job forever
            when the account is saturated; 2 windows by default.
        per_second: at most this many requests per account in any 1 s (the pace); ``None`` or
            0 for no pace.
        key_prefix: Redis key prefix of the windows.
        sleep, clock: injectable for tests (``time.sleep``, ``time.time``).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        limit: int = 80,
        window_seconds: int = 60,
        max_wait_seconds: float | None = None,
        per_second: int | None = None,
        key_prefix: str = "einvoice:factus:ratelimit",
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1 or window_seconds < 1:
            raise ValueError("limit and window_seconds must be at least 1")
        self._client = client
        self._storage = RedisStorage(
            "redis://", connection_pool=client.connection_pool, key_prefix=key_prefix
        )
        self._limiter = MovingWindowRateLimiter(self._storage)
        self._item = RateLimitItemPerSecond(limit, window_seconds, namespace="factus")
        self._pace = (RateLimitItemPerSecond(per_second, 1, namespace="factus-pace")
                      if per_second else None)
        self._max_wait = 2.0 * window_seconds if max_wait_seconds is None else max_wait_seconds
        self._sleep = sleep
        self._clock = clock
        self.limit = limit
        self.window_seconds = window_seconds

    @classmethod
    def per_minute(cls, client: redis.Redis, per_minute: int, **kwargs: object) -> RedisRateLimiter:
        """The Factus limit: ``per_minute`` requests per minute (§9), kept with a 61 s window.

        The extra second is a margin: we stamp a request when it takes its slot, Factus counts it
        when it arrives (after our connection and its queueing), so a slot freed exactly 60 s
        later could put one request too many into Factus's minute (measured: 3 × 429 in 3 min
        of B3 with a 60 s window).
        """
        return cls(client, limit=per_minute, window_seconds=61, **kwargs)  # type: ignore[arg-type]

    def acquire(self, account_key: str) -> float:
        """Take one slot for ``account_key``, sleeping until the window has room.

        Returns:
            The seconds spent waiting (wall clock), 0.0 or a few ms when a slot was free.
        Raises:
            RateLimitedError: (``reason="rate_limit_wait"``, ``may_have_reached=False``) when no
                slot frees within ``max_wait_seconds`` or before the attempt's deadline.
            redis.RedisError: when Redis is unreachable.
        """
        started = self._clock()
        slept = False
        while True:
            # The pace first, then the minute's window. When the pace lets a request through
            # but the window is full, that pace slot is wasted (the account's next request
            # waits up to 1 s more); the other order would waste a slot of the scarce minute.
            if self._pace is not None and not self._limiter.hit(self._pace, account_key):
                # The pace's slot frees within a second.
                reset_at, _ = self._limiter.get_window_stats(self._pace, account_key)
                self._wait_until(reset_at, started, account_key)
                slept = True
                continue
            if self._limiter.hit(self._item, account_key):
                waited = self._clock() - started
                if slept:
                    metrics.rate_limit_waited(account_key, waited)
                if waited > 1.0:
                    logger.info(
                        "Factus rate limit: waited %.1f s for account %s", waited, account_key
                    )
                return waited
            reset_at, _remaining = self._limiter.get_window_stats(self._item, account_key)
            self._wait_until(reset_at, started, account_key)
            slept = True

    def _wait_until(self, reset_at: float, started: float, account_key: str) -> None:
        """Sleep until ``reset_at`` (epoch s) plus jitter, or raise when past the maximum wait
        or past the attempt's deadline (:mod:`einvoice.factus.deadline`)."""
        now = self._clock()
        # Another process may take the freed slot first; the caller's loop then waits again.
        delay = max(reset_at - now, 0.0) + random.uniform(0.005, 0.05)  # noqa: S311 - jitter
        left = deadline.remaining()
        if now + delay - started > self._max_wait or (left is not None and delay > left):
            bound = (f"{self._max_wait:.0f} s" if left is None or delay <= left
                     else "the attempt's deadline")
            metrics.rate_limit_refused(account_key)
            raise RateLimitedError(
                f"no Factus request slot for account {account_key} within "
                f"{bound} (limit {self.limit} per {self.window_seconds} s)",
                reason="rate_limit_wait",
                retry_after=max(reset_at - now, 0.0),
                may_have_reached=False,
            )
        self._sleep(delay)

    def remaining(self, account_key: str) -> int:
        """How many requests ``account_key`` may send right now without waiting (>= 0).

        Read-only (``get_window_stats`` of the moving window); the dispatcher uses it to hand out
        no more new jobs per account than the account can send.

        Raises:
            redis.RedisError: when Redis is unreachable.
        """
        _reset_at, remaining = self._limiter.get_window_stats(self._item, account_key)
        return max(int(remaining), 0)

    def usage(self) -> dict[str, int]:
        """Requests each account sent within the current window, by account key; read-only.

        The accounts are those with a window in Redis (one that sent a request within the last
        ``window_seconds``); taking no slot, it can run as often as a scrape or a page asks.

        Raises:
            redis.RedisError: when Redis is unreachable.
        """
        # The window's Redis key with "{}" where the account key goes (the limits library's
        # layout: <prefix>:<namespace>/<account>/<limit>/<seconds>/second).
        template = self._storage.prefixed_key(self._item.key_for("{}"))
        head, tail = template.split("{}")
        used: dict[str, int] = {}
        for raw in self._client.scan_iter(match=f"{head}*{tail}", count=500):
            key = raw.decode() if isinstance(raw, bytes) else str(raw)
            account = key[len(head):len(key) - len(tail)]
            if account and "/" not in account:
                used[account] = max(self.limit - self.remaining(account), 0)
        return used

    def reset(self, account_key: str) -> None:
        """Forget the recorded hits of ``account_key`` (tests, operator tools)."""
        self._limiter.clear(self._item, account_key)
        if self._pace is not None:
            self._limiter.clear(self._pace, account_key)
