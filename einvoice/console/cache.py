"""A small time-to-live cache for the overview's numbers, shared by every open overview.

Each overview refreshes every 10 s; with a million jobs its counts cost a few hundred
milliseconds of PostgreSQL time, so one process reads them at most every :data:`TTL_SECONDS`
per scope (all organizations, or one), whatever the number of people watching.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")

#: How long a value is reused (seconds): half the overview's refresh period.
TTL_SECONDS = 5.0


class TtlCache(Generic[T]):
    """Values by key, each recomputed when older than ``ttl`` seconds (thread-safe; two threads
    that miss together may both compute, which is harmless)."""

    def __init__(self, ttl: float = TTL_SECONDS) -> None:
        self.ttl = ttl
        self._values: dict[Hashable, tuple[float, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value of ``key``: the cached one while fresh, else ``compute()`` (then kept)."""
        now = time.monotonic()
        with self._lock:
            hit = self._values.get(key)
        if hit is not None and now - hit[0] < self.ttl:
            return hit[1]
        value = compute()
        with self._lock:
            self._values[key] = (now, value)
        return value
