"""The deadline of one submission attempt, honoured by every wait of the Factus client.

A job's claim holds a lease (``EINVOICE_LEASE_SECONDS``, 120 s). Before its POST the worker waits
for several things: the account's token-renewal lock, a rate-limit slot, a ``Retry-After``. Each
wait is bounded on its own, but together they can outlast the lease, and a POST that leaves after
the lease expired may race another worker's claim of the same job. So the submission service
sets one deadline per attempt (:func:`attempt_deadline`) and each wait stops at it:

* :class:`~einvoice.factus.ratelimit.RedisRateLimiter` raises ``RateLimitedError``
  (``rate_limit_wait``) instead of sleeping past it;
* the token-renewal locks (:mod:`einvoice.factus.tokens`) give up with ``TokenUnavailableError``;
* the client's own retries (:mod:`einvoice.factus.client`) raise the error instead of sleeping
  through a backoff or a ``Retry-After`` that ends past it.

HTTP timeouts are not shortened: a request that has left is better answered than abandoned.

The deadline lives in a :class:`contextvars.ContextVar`, so it belongs to the thread (or task)
that set it: the worker's threads pool runs one attempt per thread. Times are
``time.monotonic()`` seconds.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_DEADLINE: ContextVar[float | None] = ContextVar("einvoice_factus_deadline", default=None)


@contextmanager
def attempt_deadline(at: float | None) -> Iterator[None]:
    """Within the block, every wait of the Factus client ends by ``at`` (``time.monotonic()``
    seconds; None: no deadline). Nested blocks keep the earlier of the two deadlines."""
    outer = _DEADLINE.get()
    effective = at if outer is None else (outer if at is None else min(outer, at))
    token = _DEADLINE.set(effective)
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def remaining() -> float | None:
    """Seconds left until the current deadline (may be negative), or None when there is none."""
    at = _DEADLINE.get()
    return None if at is None else at - time.monotonic()


def cap(seconds: float) -> float:
    """``seconds`` shortened to the time left before the deadline (never below 0)."""
    left = remaining()
    return seconds if left is None else max(min(seconds, left), 0.0)
