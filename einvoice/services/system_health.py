"""Is the system alive? PostgreSQL, Redis, beat and the workers, each answered in bounded time.

For the operator console's overview (:func:`check_system`, :func:`account_budgets`) and the
scrape-time gauges of ``GET /metrics`` (:mod:`einvoice.services.metrics`).

Heartbeats, both in Redis with the stamping host's clock (Unix seconds; hosts keep their clocks
in sync, as the rate limiter already requires):

* beat: ``einvoice:heartbeat:beat`` holds the time beat last published a task
  (:class:`BeatHeartbeat`, called from Celery's ``after_task_publish`` signal in the beat
  process only; beat publishes the dispatchers every ``EINVOICE_DISPATCH_INTERVAL`` seconds and
  the lease sweeper every 30 s, so a live beat stamps at least every 30 s). Stamped by beat
  itself: a beat that stopped is seen even while the workers run, and workers that stopped do
  not make beat look dead.
* workers: the hash ``einvoice:heartbeat:workers`` maps each worker's node name to the time it
  last stamped (:class:`WorkerHeartbeat`, a thread every :data:`WORKER_HEARTBEAT_SECONDS`
  seconds from ``worker_ready``; its field is removed at a warm shutdown). Reading it is one
  ``HGETALL``: no broadcast to the workers, no wait for their replies.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import redis
from redis.exceptions import RedisError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from einvoice.db import api_jobs as ping_repo
from einvoice.factus.ratelimit import RedisRateLimiter
from einvoice.settings import Settings

log = logging.getLogger(__name__)

#: Redis key of beat's heartbeat (a Unix time, as text).
BEAT_KEY = "einvoice:heartbeat:beat"
#: Redis hash of the workers' heartbeats (node name -> Unix time, as text).
WORKERS_KEY = "einvoice:heartbeat:workers"
#: Seconds between two stamps of a worker.
WORKER_HEARTBEAT_SECONDS = 10.0
#: A worker not seen for this long is gone (three missed stamps).
WORKER_STALE_SECONDS = 30.0
#: Beat not seen for this long is down (twice the lease sweeper's 30 s period).
BEAT_STALE_SECONDS = 60.0
#: Fields of workers not seen for this long are dropped from the hash (old containers).
WORKER_FORGET_SECONDS = 3600.0
#: Seconds a health check waits for Redis (connect, then each answer).
REDIS_TIMEOUT_SECONDS = 0.5


@dataclass(frozen=True)
class ComponentHealth:
    """One component's state.

    Attributes:
        name: ``postgres``, ``redis``, ``beat`` or ``workers``.
        ok: it answers (beat: stamped within :data:`BEAT_STALE_SECONDS`; workers: at least one
            stamped within :data:`WORKER_STALE_SECONDS`).
        detail: one line for a person (``answered in 2 ms``, ``2 workers: ...``, the error).
        age_seconds: for beat and workers, seconds since the last heartbeat (None when there
            is none, or for PostgreSQL and Redis).
    """

    name: str
    ok: bool
    detail: str
    age_seconds: float | None


@dataclass(frozen=True)
class SystemHealth:
    """The four components of :func:`check_system`."""

    postgres: ComponentHealth
    redis: ComponentHealth
    beat: ComponentHealth
    workers: ComponentHealth

    @property
    def ok(self) -> bool:
        """Every component is ok."""
        return all(component.ok for component in self.components())

    def components(self) -> list[ComponentHealth]:
        """The components in display order: postgres, redis, beat, workers."""
        return [self.postgres, self.redis, self.beat, self.workers]


@dataclass(frozen=True)
class AccountBudget:
    """A Factus account's use of its rate limit right now.

    Attributes:
        account_key: ``default`` (the ``FACTUS_*`` account) or a ``factus_credentials`` row id.
        used_last_minute: requests sent within the limiter's window (61 s, see
            :meth:`einvoice.factus.ratelimit.RedisRateLimiter.per_minute`).
        limit_per_minute: ``FACTUS_RATE_LIMIT_PER_MINUTE``.
    """

    account_key: str
    used_last_minute: int
    limit_per_minute: int


@lru_cache(maxsize=8)
def health_redis(redis_url: str) -> redis.Redis:
    """A Redis client of ``redis_url`` with :data:`REDIS_TIMEOUT_SECONDS` timeouts (one per URL
    and process; redis-py clients are thread-safe)."""
    return redis.Redis.from_url(redis_url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
                                socket_timeout=REDIS_TIMEOUT_SECONDS)


# --- heartbeats --------------------------------------------------------------------------------


def stamp_beat(client: redis.Redis, now: float | None = None) -> None:
    """Record that beat is alive at ``now`` (Unix seconds; default: the current time)."""
    client.set(BEAT_KEY, f"{time.time() if now is None else now:.3f}")


def beat_last_seen(client: redis.Redis) -> float | None:
    """When beat last stamped (Unix seconds), or None if it never did.

    Raises:
        redis.RedisError: Redis unreachable.
    """
    raw = client.get(BEAT_KEY)
    return float(raw) if raw is not None else None


def stamp_worker(client: redis.Redis, name: str, now: float | None = None) -> None:
    """Record that worker ``name`` is alive at ``now`` (Unix seconds; default: now), and drop
    the fields of workers not seen for :data:`WORKER_FORGET_SECONDS`."""
    at = time.time() if now is None else now
    client.hset(WORKERS_KEY, name, f"{at:.3f}")
    gone = [worker for worker, seen in workers_last_seen(client).items()
            if at - seen > WORKER_FORGET_SECONDS]
    if gone:
        client.hdel(WORKERS_KEY, *gone)


def forget_worker(client: redis.Redis, name: str) -> None:
    """Remove worker ``name``'s heartbeat (a warm shutdown: it is gone at once, not in 30 s)."""
    client.hdel(WORKERS_KEY, name)


def workers_last_seen(client: redis.Redis) -> dict[str, float]:
    """Each worker's last stamp (node name -> Unix seconds).

    Raises:
        redis.RedisError: Redis unreachable.
    """
    seen: dict[str, float] = {}
    for name, raw in client.hgetall(WORKERS_KEY).items():
        try:
            seen[name.decode() if isinstance(name, bytes) else str(name)] = float(raw)
        except ValueError:
            continue  # not a stamp of ours; the next stamp of that worker replaces it
    return seen


class WorkerHeartbeat:
    """A daemon thread stamping worker ``name`` every ``interval`` seconds until :meth:`stop`.

    A Redis error is logged (once until Redis answers again) and the thread keeps going.
    """

    def __init__(self, client: redis.Redis, name: str,
                 interval: float = WORKER_HEARTBEAT_SECONDS) -> None:
        self._client = client
        self.name = name
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="einvoice-heartbeat",
                                        daemon=True)

    def start(self) -> WorkerHeartbeat:
        """Start stamping (the first stamp at once); returns self."""
        self._thread.start()
        return self

    def _run(self) -> None:
        failing = False
        while True:
            try:
                stamp_worker(self._client, self.name)
                failing = False
            except RedisError as exc:
                if not failing:
                    log.warning("worker heartbeat not stamped (%s); retrying every %.0f s",
                                type(exc).__name__, self._interval)
                failing = True
            if self._stop.wait(self._interval):
                return

    def stop(self) -> None:
        """Stop stamping and remove the worker's field (best effort: Redis may be gone)."""
        self._stop.set()
        # Best effort: with Redis gone, its stamp ages out in WORKER_STALE_SECONDS anyway.
        with contextlib.suppress(RedisError):
            forget_worker(self._client, self.name)


class BeatHeartbeat:
    """Call it each time beat publishes a task: it stamps :data:`BEAT_KEY`, at most once every
    ``min_interval`` seconds. Never raises: a Redis problem is logged (once until it passes),
    beat goes on publishing.

    Args:
        client_factory: returns the Redis client (called on first use, in the beat process).
        min_interval: seconds between two stamps.
        clock: ``time.monotonic`` (tests pass a fake).
    """

    def __init__(self, client_factory: Callable[[], redis.Redis], min_interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._factory = client_factory
        self._client: redis.Redis | None = None
        self._min_interval = min_interval
        self._clock = clock
        self._last = float("-inf")
        self._failing = False
        self._lock = threading.Lock()

    def __call__(self, **_: object) -> None:
        """Stamp unless one was stamped within ``min_interval`` (Celery passes signal
        arguments, ignored)."""
        now = self._clock()
        with self._lock:
            if now - self._last < self._min_interval:
                return
            self._last = now
        try:
            if self._client is None:
                self._client = self._factory()
            stamp_beat(self._client)
            self._failing = False
        except RedisError as exc:
            if not self._failing:
                log.warning("beat heartbeat not stamped (%s)", type(exc).__name__)
            self._failing = True


# --- the checks ---------------------------------------------------------------------------------


def _check_postgres(engine: Engine) -> ComponentHealth:
    started = time.perf_counter()
    try:
        with Session(engine) as session:
            ping_repo.ping(session)
    except SQLAlchemyError as exc:
        cause = getattr(exc, "orig", None) or exc
        return ComponentHealth("postgres", False, f"unreachable: {type(cause).__name__}", None)
    return ComponentHealth("postgres", True,
                           f"answered in {(time.perf_counter() - started) * 1000:.0f} ms", None)


def _check_redis(client: redis.Redis) -> ComponentHealth:
    started = time.perf_counter()
    try:
        client.ping()
    except (RedisError, OSError) as exc:
        return ComponentHealth("redis", False, f"unreachable: {type(exc).__name__}", None)
    return ComponentHealth("redis", True,
                           f"answered in {(time.perf_counter() - started) * 1000:.0f} ms", None)


def _check_beat(client: redis.Redis, now: float) -> ComponentHealth:
    seen = beat_last_seen(client)
    if seen is None:
        return ComponentHealth("beat", False, "never seen: no heartbeat in Redis", None)
    age = max(now - seen, 0.0)
    if age > BEAT_STALE_SECONDS:
        return ComponentHealth("beat", False, f"last seen {age:.0f} s ago", age)
    return ComponentHealth("beat", True, f"last seen {age:.0f} s ago", age)


def _check_workers(client: redis.Redis, now: float) -> ComponentHealth:
    ages = {name: max(now - seen, 0.0) for name, seen in workers_last_seen(client).items()}
    alive = sorted(name for name, age in ages.items() if age <= WORKER_STALE_SECONDS)
    youngest = min(ages.values()) if ages else None
    if not alive:
        detail = ("no worker seen" if youngest is None
                  else f"no worker seen for {youngest:.0f} s")
        return ComponentHealth("workers", False, detail, youngest)
    return ComponentHealth("workers", True,
                           f"{len(alive)} worker{'s' if len(alive) > 1 else ''}: "
                           f"{', '.join(alive)}", youngest)


def check_system(settings: Settings, engine: Engine) -> SystemHealth:
    """PostgreSQL (``SELECT 1`` on ``engine``), Redis (``PING``), beat and the workers (their
    heartbeats in Redis).

    Bounded in time: Redis by :data:`REDIS_TIMEOUT_SECONDS` per call (a dead Redis costs about
    a second in all), PostgreSQL by the engine's connect timeout (5 s with
    :func:`einvoice.db.engine.make_engine`). Never raises for an unreachable component: it is
    reported not ok with the error's type (never its text: it may hold a URL).

    Args:
        settings: ``REDIS_URL`` is read.
        engine: the caller's database engine.
    """
    client = health_redis(settings.redis_url)
    postgres = _check_postgres(engine)
    redis_health = _check_redis(client)
    if not redis_health.ok:
        unknown = "unknown: Redis unreachable"
        return SystemHealth(postgres, redis_health, ComponentHealth("beat", False, unknown, None),
                            ComponentHealth("workers", False, unknown, None))
    now = time.time()
    try:
        beat = _check_beat(client, now)
        workers = _check_workers(client, now)
    except RedisError as exc:
        failed = f"unknown: {type(exc).__name__}"
        beat = ComponentHealth("beat", False, failed, None)
        workers = ComponentHealth("workers", False, failed, None)
    return SystemHealth(postgres, redis_health, beat, workers)


def account_budgets(settings: Settings) -> list[AccountBudget]:
    """Each Factus account's requests within the rate limiter's window, read from the limiter's
    Redis storage without taking a slot; the accounts that sent a request within the last
    minute, by account key.

    Raises:
        redis.RedisError: Redis unreachable (within :data:`REDIS_TIMEOUT_SECONDS` per call).
    """
    limiter = RedisRateLimiter.per_minute(health_redis(settings.redis_url),
                                          settings.factus_rate_limit_per_minute)
    return [AccountBudget(key, used, settings.factus_rate_limit_per_minute)
            for key, used in sorted(limiter.usage().items())]
