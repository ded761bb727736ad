"""The body of ``GET /metrics``: the workers' counters plus gauges read at scrape time.

:func:`render` puts together, in Prometheus' text format:

* the counters and histograms of :mod:`einvoice.metrics`: with ``PROMETHEUS_MULTIPROC_DIR``,
  every process's files in that folder merged (``MultiProcessCollector``: the workers', and
  this process's own); without it, this process's own values only;
* :class:`StateCollector`'s gauges, read when Prometheus scrapes: the database's aggregates
  (:func:`einvoice.db.metrics.read_state`, one read-only transaction) and Redis' heartbeats and
  rate-limit windows (:mod:`einvoice.services.system_health`). A source that cannot be read
  leaves its gauges out and says so in ``einvoice_metrics_source_up{source}`` (0), so a dead
  database never hides the workers' counters.

Every metric, with its labels and meaning, is listed in docs/metrics.md.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db import metrics as metrics_repo
from einvoice.db.uow import UnitOfWork
from einvoice.domain.jobs import FollowupStatus
from einvoice.factus.ratelimit import RedisRateLimiter
from einvoice.services import system_health
from einvoice.settings import Settings

log = logging.getLogger(__name__)


def _gauge(name: str, documentation: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


class StateCollector(Collector):
    """Gauges read at each scrape from PostgreSQL and Redis (see the module docstring).

    Args:
        session_factory: the API's database sessions.
        redis_client: a Redis client with short timeouts (the API's, 1 s).
        settings: ``FACTUS_RATE_LIMIT_PER_MINUTE`` is read.
        worker_files: whether the workers' multiprocess folder could be read (reported as
            ``einvoice_metrics_source_up{source="worker_files"}``; None: not configured).
    """

    def __init__(self, session_factory: sessionmaker[Session], redis_client: redis.Redis,
                 settings: Settings, worker_files: bool | None = None) -> None:
        self._factory = session_factory
        self._redis = redis_client
        self._settings = settings
        self._worker_files = worker_files

    def describe(self) -> list[Any]:
        """Nothing: registering the collector must not query anything."""
        return []

    def collect(self) -> Iterator[Any]:
        """Read PostgreSQL, then Redis, and yield their gauges and the sources' state."""
        up = _gauge("einvoice_metrics_source_up", "Whether the scrape could read the source "
                    "(postgres, redis, worker_files): 1 yes, 0 no.", ["source"])
        took = _gauge("einvoice_metrics_source_duration_seconds", "Seconds the scrape spent "
                      "reading the source.", ["source"])
        for source, read in (("postgres", self._postgres), ("redis", self._redis_gauges)):
            started = time.perf_counter()
            families, ok = read()
            took.add_metric([source], time.perf_counter() - started)
            up.add_metric([source], 1.0 if ok else 0.0)
            yield from families
        if self._worker_files is not None:
            up.add_metric(["worker_files"], 1.0 if self._worker_files else 0.0)
        yield up
        yield took

    # -- PostgreSQL ------------------------------------------------------------------------

    def _postgres(self) -> tuple[list[Any], bool]:
        try:
            with UnitOfWork(self._factory) as uow:
                snap = metrics_repo.read_state(uow.session)
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            log.warning("metrics: PostgreSQL not read (%s)", type(cause).__name__)
            return [], False
        return _state_families(snap), True

    # -- Redis -----------------------------------------------------------------------------

    def _redis_gauges(self) -> tuple[list[Any], bool]:
        try:
            beat = system_health.beat_last_seen(self._redis)
            workers = system_health.workers_last_seen(self._redis)
            limit = self._settings.factus_rate_limit_per_minute
            usage = RedisRateLimiter.per_minute(self._redis, limit).usage()
        except (RedisError, OSError) as exc:
            log.warning("metrics: Redis not read (%s)", type(exc).__name__)
            return [], False
        now = time.time()
        seen = _gauge("einvoice_beat_last_seen_seconds", "Unix time beat last published a "
                      "task (its heartbeat); 0 when it never did.")
        seen.add_metric([], beat or 0.0)
        alive = _gauge("einvoice_workers_alive", "Workers whose heartbeat is younger than "
                       f"{system_health.WORKER_STALE_SECONDS:.0f} s.")
        alive.add_metric([], float(sum(1 for stamp in workers.values()
                                       if now - stamp <= system_health.WORKER_STALE_SECONDS)))
        used = _gauge("einvoice_factus_account_budget_used", "Requests the Factus account sent "
                      "within its rate-limit window (61 s).", ["account"])
        budget = _gauge("einvoice_factus_account_budget_limit", "Requests the Factus account may "
                        "send per window (FACTUS_RATE_LIMIT_PER_MINUTE).", ["account"])
        for account, count in sorted(usage.items()):
            used.add_metric([account], float(count))
            budget.add_metric([account], float(limit))
        return [seen, alive, used, budget], True


def _state_families(snap: metrics_repo.StateSnapshot) -> list[Any]:
    """The gauges of one database snapshot (names and labels: docs/metrics.md)."""
    jobs = _gauge("einvoice_jobs", "Jobs by organization and status (every row of "
                  "electronic_invoicing_jobs).", ["organization", "status"])
    for (org, status), count in sorted(snap.jobs.items()):
        jobs.add_metric([str(org), status], float(count))
    outcomes = _gauge("einvoice_job_outcomes", "Rejected, failed and cancelled jobs by status "
                      "and code (error_code; empty when none).", ["status", "code"])
    for (status, code), count in sorted(snap.outcomes.items()):
        outcomes.add_metric([status, code], float(count))
    due = _gauge("einvoice_jobs_due_pending", "Pending jobs due now (waiting for a worker).")
    due.add_metric([], float(snap.due_pending))
    oldest_pending = _gauge("einvoice_jobs_oldest_pending_seconds", "Seconds the longest-waiting "
                            "due pending job has been due; 0 when none is.")
    oldest_pending.add_metric([], snap.oldest_due_pending_seconds)
    expired = _gauge("einvoice_jobs_lease_expired", "Processing jobs whose lease ran out (their "
                     "worker died; the sweeper hands them back).")
    expired.add_metric([], float(snap.expired_leases))
    oldest_lease = _gauge("einvoice_jobs_oldest_expired_lease_seconds", "Seconds since the "
                          "oldest expired lease ran out; 0 when none has.")
    oldest_lease.add_metric([], snap.oldest_expired_lease_seconds)
    at_dian = _gauge("einvoice_documents_pending_at_dian", "Documents DIAN has not answered yet "
                     "(jobs sent), by organization and document type.",
                     ["organization", "document_type"])
    blocked = _gauge("einvoice_account_blocked_seconds", "Seconds since the oldest document "
                     "pending at DIAN got its first pending answer: Factus refuses new "
                     "documents of that type on the account meanwhile.",
                     ["organization", "document_type"])
    for (org, document_type), (count, seconds) in sorted(snap.pending_at_dian.items()):
        at_dian.add_metric([str(org), document_type], float(count))
        blocked.add_metric([str(org), document_type], seconds)
    oldest_sent = _gauge("einvoice_jobs_oldest_sent_seconds", "Seconds the oldest document "
                         "pending at DIAN has been pending; 0 when none is.")
    oldest_sent.add_metric([], max((s for _, s in snap.pending_at_dian.values()), default=0.0))
    return [jobs, outcomes, due, oldest_pending, expired, oldest_lease, at_dian, blocked,
            oldest_sent, *_range_families(snap), *_webhook_families(snap)]


def _range_families(snap: metrics_repo.StateSnapshot) -> list[Any]:
    labels = ["range_id", "organization", "document_type", "prefix"]
    remaining = _gauge("einvoice_range_remaining_numbers", "Numbers left in an active DIAN "
                       "numbering range.", labels)
    size = _gauge("einvoice_range_size_numbers", "Numbers in an active DIAN numbering range "
                  "(from its first to its last).", labels)
    expiry = _gauge("einvoice_range_days_to_expiry", "Days from today (Bogotá) to an active "
                    "range's valid_until; negative once expired.", labels)
    for row in snap.ranges:
        values = [str(row.id), str(row.organization_id), row.document_type, row.prefix]
        if row.remaining is not None:
            remaining.add_metric(values, float(row.remaining))
        if row.size is not None:
            size.add_metric(values, float(row.size))
        if row.days_to_expiry is not None:
            expiry.add_metric(values, float(row.days_to_expiry))
    return [remaining, size, expiry]


def _webhook_families(snap: metrics_repo.StateSnapshot) -> list[Any]:
    backlog = _gauge("einvoice_webhook_deliveries_backlog", "Webhook deliveries not done yet, "
                     "by status (pending, processing).", ["status"])
    for waiting in (FollowupStatus.PENDING, FollowupStatus.PROCESSING):
        backlog.add_metric([waiting.value], float(snap.webhooks_backlog.get(waiting.value, 0)))
    lag = _gauge("einvoice_webhook_delivery_lag_seconds", "Age of the oldest webhook delivery "
                 "not done yet (since its event); 0 when none.")
    lag.add_metric([], snap.webhook_lag_seconds)
    last_day = _gauge("einvoice_webhook_deliveries_last_day", "Webhook deliveries created in "
                      "the last 24 hours, by status (done, failed, pending, processing).",
                      ["status"])
    for status, count in sorted(snap.webhooks_last_day.items()):
        last_day.add_metric([status], float(count))
    return [backlog, lag, last_day]


def _worker_files_ready(directory: str) -> bool:
    """The multiprocess folder exists (created when missing: no worker has written yet)."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        log.warning("metrics: worker files not read (%s)", type(exc).__name__)
        return False
    return os.path.isdir(directory)


def render(settings: Settings, session_factory: sessionmaker[Session],
           redis_client: redis.Redis) -> bytes:
    """The whole ``/metrics`` body (Prometheus text format 0.0.4).

    Args:
        settings: ``PROMETHEUS_MULTIPROC_DIR`` (``prometheus_multiproc_dir``) says where the
            workers' files are; unset, this process's own counters are exported instead.
        session_factory, redis_client: where the scrape-time gauges are read.
    Returns:
        The body; never raises for an unreachable source (see :class:`StateCollector`).
    """
    directory = settings.prometheus_multiproc_dir
    registry = CollectorRegistry()
    files_ok = _worker_files_ready(directory) if directory else None
    registry.register(StateCollector(session_factory, redis_client, settings,
                                     worker_files=files_ok))
    if directory is None:
        # One process: its own counters, with the process and runtime collectors.
        return generate_latest(REGISTRY) + generate_latest(registry)
    if files_ok:
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry)
