"""Per-account request quota of the simulator: 80 requests per minute by default (FACTUS_API.md §9).

A fixed one-minute window per account (the quota "resets when the minute ends", §9), counted with the
``limits`` library. Every API call of an identified account counts, token calls included (Decision 5).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter


@dataclass(frozen=True)
class RateDecision:
    """The quota after one request.

    Attributes:
        allowed: False when the request is over the limit (answer 429).
        limit: requests per minute.
        remaining: requests left in the current window (≥ 0).
        reset_at: Unix time (seconds) at which the window ends (``X-RateLimit-Reset``).
        retry_after: whole seconds until then, at least 1 (``Retry-After`` of a 429).
    """

    allowed: bool
    limit: int
    remaining: int
    reset_at: int
    retry_after: int

    def headers(self) -> dict[str, str]:
        """``X-RateLimit-*`` headers for any response, plus ``Retry-After`` when refused."""
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


class AccountRateLimiter:
    """Counts requests per account key in fixed one-minute windows. Thread-safe (``limits`` storage)."""

    def __init__(self) -> None:
        self._storage = MemoryStorage()
        self._limiter = FixedWindowRateLimiter(self._storage)

    def hit(self, account_key: str, per_minute: int) -> RateDecision:
        """Count one request of ``account_key`` against ``per_minute`` and say whether it may proceed."""
        item = RateLimitItemPerMinute(per_minute)
        allowed = self._limiter.hit(item, account_key)
        window = self._limiter.get_window_stats(item, account_key)
        reset_at = math.ceil(window.reset_time)
        return RateDecision(
            allowed=allowed,
            limit=per_minute,
            remaining=max(0, window.remaining),
            reset_at=reset_at,
            retry_after=max(1, math.ceil(window.reset_time - time.time())),
        )

    def reset(self) -> None:
        """Forget every window (``POST /__sandbox/reset``)."""
        self._storage.reset()
