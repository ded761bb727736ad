"""The API process's long-lived resources, built once by :func:`einvoice.api.create_app`.

One engine and session factory per process (never per request), the key cache, and the Factus
clients, built on first need (only the document download and the cancel of a job that may
exist at Factus need them), so that an API without Redis or ``EINVOICE_SECRET_KEY`` still
serves everything else.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from einvoice.services.api_keys import KeyCache
from einvoice.settings import Settings

T = TypeVar("T")

#: Threads that run the routes' database work: as many as the engine has connections.
DEFAULT_THREADS = 40


@dataclass
class ApiContext:
    """What every request of one API process shares.

    Attributes:
        settings: the process's settings.
        engine / session_factory: the database.
        keys: the API-key cache.
        idempotency_stale_seconds: an unfinished idempotency claim this old is taken over.
        executor: the threads that run the routes' blocking work (:meth:`run`).
    """

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    keys: KeyCache
    idempotency_stale_seconds: float = 300.0
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(
        DEFAULT_THREADS, thread_name_prefix="api"))
    _clients: Any = None
    _redis: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """Run the blocking ``fn(*args, **kwargs)`` (database work, a Factus call) in
        :attr:`executor`
        and return its result; its exception propagates.

        The routes are ``async`` and hand their work to this executor rather than to
        Starlette's thread pool: anyio's hop (capacity limiter, cancel scope, its own queue)
        cost about a tenth of the API process's CPU per enqueue request (benchmark B7). The
        caller's context variables (the request id of the log lines) go along.
        """
        call = functools.partial(contextvars.copy_context().run, fn, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    def factus_clients(self) -> Any:
        """The process's :class:`einvoice.factus.client.FactusClients` (built on first use).

        Raises:
            ConfigError: ``EINVOICE_SECRET_KEY`` unset or malformed (tokens are stored
                encrypted in Redis).
        """
        if self._clients is None:
            with self._lock:
                if self._clients is None:
                    from einvoice.factus.client import create_factus_clients  # noqa: PLC0415

                    self._clients = create_factus_clients(self.settings)
        return self._clients

    def redis(self) -> Any:
        """A Redis client of ``REDIS_URL`` (for ``/readyz``), built on first use, with short
        timeouts so that a dead Redis answers in a second."""
        if self._redis is None:
            with self._lock:
                if self._redis is None:
                    import redis  # noqa: PLC0415

                    self._redis = redis.Redis.from_url(
                        self.settings.redis_url, socket_connect_timeout=1, socket_timeout=1)
        return self._redis

    def close(self) -> None:
        """Release the pools and the threads (at shutdown)."""
        self.executor.shutdown(wait=False, cancel_futures=True)
        if self._clients is not None:
            self._clients.close()
        if self._redis is not None:
            self._redis.close()
        self.engine.dispose()


@dataclass
class LazyClients:
    """A stand-in for :class:`einvoice.factus.client.FactusClients` that builds the real ones
    only when a client is asked for (``for_account``)."""

    context: ApiContext

    def for_account(self, account: Any) -> Any:
        """The Factus client of ``account``."""
        return self.context.factus_clients().for_account(account)
