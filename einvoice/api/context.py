"""The API process's long-lived resources, built once by :func:`einvoice.api.create_app`.

One engine and session factory per process (never per request), the key cache, and the Factus
clients, built on first need (only the document download and the cancel of a job that may
exist at Factus need them), so that an API without Redis or ``EINVOICE_SECRET_KEY`` still
serves everything else.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from einvoice.services.api_keys import KeyCache
from einvoice.settings import Settings


@dataclass
class ApiContext:
    """What every request of one API process shares.

    Attributes:
        settings: the process's settings.
        engine / session_factory: the database.
        keys: the API-key cache.
        idempotency_stale_seconds: an unfinished idempotency claim this old is taken over.
    """

    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    keys: KeyCache
    idempotency_stale_seconds: float = 300.0
    _clients: Any = None
    _redis: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

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
        """Release the pools (at shutdown)."""
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
