"""Long-lived resources of one worker process: engine, sessions, Factus clients, Redis.

Built on first use inside the process that uses them (never at import time, never shared across
a fork: STYLE.md habit 7). With the threads pool every thread of the process shares them; the
HTTP and database pools are sized for the pool's concurrency.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass

import redis
from sqlalchemy import Engine

from einvoice.crypto import SecretBox
from einvoice.db.engine import make_engine, make_session_factory
from einvoice.db.tokens import CredentialTokenStore
from einvoice.factus.client import FactusClients, create_factus_clients
from einvoice.factus.tokens import RedisTokenStore
from einvoice.queueing import CeleryPublisher
from einvoice.services.runner import WorkerContext
from einvoice.settings import Settings, get_settings


@dataclass
class Resources:
    """What tasks of this process share."""

    settings: Settings
    engine: Engine
    redis: redis.Redis
    clients: FactusClients
    worker: WorkerContext
    publisher: CeleryPublisher


_lock = threading.Lock()
_resources: Resources | None = None
_pid: int | None = None
#: The worker's concurrency (``-c N``), set at ``worker_init`` (see :func:`set_concurrency`).
_concurrency: int | None = None


def set_concurrency(threads: int) -> None:
    """Remember how many tasks this worker runs at once, to size the database pool for them.

    ``celery worker -c N`` does not write ``worker_concurrency`` into ``app.conf`` (Celery keeps
    it on the ``WorkController``), so :func:`workers.app` passes it on at ``worker_init``.
    Without it a ``-c 25`` worker had a pool of 10 + 10 overflow connections: threads waited for
    a connection, and overflow connections were opened and closed all the time.
    """
    global _concurrency  # noqa: PLW0603 - per process, set once at worker_init
    _concurrency = max(1, int(threads))


def concurrency() -> int:
    """Tasks this worker runs at once: ``-c N``, else ``worker_concurrency``, else 8."""
    from workers.app import app  # noqa: PLC0415 - the app is configured by now

    return _concurrency or int(app.conf.worker_concurrency or 8)


def get_resources() -> Resources:
    """This process's resources, built on first use (and rebuilt after a fork)."""
    global _resources, _pid  # noqa: PLW0603 - per-process, built on first use
    if _resources is None or _pid != os.getpid():
        with _lock:
            if _resources is None or _pid != os.getpid():
                _resources = _build()
                _pid = os.getpid()
    return _resources


def _build() -> Resources:
    from workers.app import app  # noqa: PLC0415 - the app is configured by now

    settings = get_settings()
    # One connection per task thread, plus the job listener's and a margin; never more than
    # 52 kept open per process (PostgreSQL's max_connections is shared by every worker).
    # No pre-ping: every database step of a task is retried (the claim by the task, the record
    # for 60 s), and the first disconnect error after a PostgreSQL restart replaces the pool.
    engine = make_engine(settings.require_database_url(), pool_size=min(concurrency(), 50) + 2,
                         max_overflow=10, pre_ping=False)
    redis_client = redis.Redis.from_url(settings.redis_url, socket_timeout=10,
                                        socket_connect_timeout=5, retry_on_timeout=True,
                                        health_check_interval=10)
    box = SecretBox.from_settings(settings)
    session_factory = make_session_factory(engine)
    token_store = CredentialTokenStore(
        session_factory, box, fallback=RedisTokenStore(redis_client, box),
        margin_seconds=settings.factus_token_margin_seconds,
    )
    clients = create_factus_clients(settings, redis_client=redis_client, token_store=token_store)
    worker = WorkerContext(
        session_factory=session_factory, clients=clients, settings=settings,
        worker_id=f"{socket.gethostname()}:{os.getpid()}", secret_box=box,
    )
    return Resources(settings=settings, engine=engine, redis=redis_client, clients=clients,
                     worker=worker, publisher=CeleryPublisher(app))


def reset_resources() -> None:
    """Drop this process's resources (tests; worker shutdown)."""
    global _resources  # noqa: PLW0603 - per-process resources
    with _lock:
        if _resources is not None:
            _resources.clients.close()
            _resources.engine.dispose()
        _resources = None
