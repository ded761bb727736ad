"""The dispatcher and the lease sweeper: the database repairs the broker.

* :func:`dispatch_due_jobs` (beat, every few seconds): publishes a wake-up for every due job that
  has none in flight: plain SQL inserts, retries whose ``next_retry_at`` arrived, DIAN-slow
  re-checks, and jobs whose message Redis lost.
* :func:`recover_expired_leases` (beat, about a minute): a ``processing`` job whose lease expired
  (its worker was killed) goes back to ``pending``; the next claim reconciles it with Factus by
  reference code before any re-send.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import redis
from sqlalchemy.orm import Session, sessionmaker

from einvoice.db import dispatcher as dispatch_repo
from einvoice.db import jobs as job_repo
from einvoice.db import listener
from einvoice.db.uow import UnitOfWork
from einvoice.domain.jobs import JobState, JobStatus, Outcome, RetryPolicy, StepOutcome, transition
from einvoice.queueing import Publisher
from einvoice.services.accounts import account_keys_by_organization
from einvoice.settings import Settings

log = logging.getLogger(__name__)


def account_budgets(session: Session, settings: Settings, limiter: object | None) -> dict[int, int]:
    """How many new (pending) jobs each organization with its own Factus account may get now.

    The account-level gate of the dispatcher (without it, a burst of wake-ups for an account
    that cannot send makes workers claim, wait and park thousands of jobs, and 409s eat the
    account's quota):

    * an organization with a document pending at DIAN (a ``sent`` job) gets 0: Factus answers
      409 to any new document of the account until that one is settled (FACTUS_API.md §5.3);
      its re-check itself is always dispatched (``select_due_for_dispatch``);
    * otherwise, the requests its account may still send in the limiter's moving window
      (80 per minute, Decision 5) minus its jobs already in flight.

    Organizations on the default ``FACTUS_*`` account are not listed (unlimited here); the
    worker's own limiter and the claim-time check still hold them. Returns {} when the limiter
    is not a Redis limiter (tests, benchmarks) or Redis cannot be read (fail open: the workers'
    limiter still protects the account).
    """
    remaining = getattr(limiter, "remaining", None)
    if remaining is None:
        return {}
    keys = account_keys_by_organization(session, settings)
    if not keys:
        return {}
    counts = dispatch_repo.gate_counts(session, list(keys),
                                       redispatch_seconds=settings.einvoice_redispatch_seconds)
    budgets: dict[int, int] = {}
    try:
        for org, key in keys.items():
            at_dian, in_flight = counts.get(org, (0, 0))
            budgets[org] = 0 if at_dian else max(remaining(key) - in_flight, 0)
    except redis.RedisError as exc:
        log.warning("dispatcher cannot read the rate-limit windows (%s); not gating", exc)
        return {}
    return budgets


def dispatch_due_jobs(
    session_factory: sessionmaker[Session], publisher: Publisher, settings: Settings,
    limiter: object | None = None,
) -> int:
    """Publish ``einvoice.submit_invoice`` for due jobs; return how many were published.

    Selection and marking happen in one short transaction; messages are sent after it commits.
    A crash between commit and publish loses nothing: the jobs are re-published after
    ``EINVOICE_REDISPATCH_SECONDS``. With the process's rate ``limiter`` (a
    :class:`~einvoice.factus.ratelimit.RedisRateLimiter`), each organization with its own
    account gets no more new jobs than :func:`account_budgets` allows.
    """
    with UnitOfWork(session_factory) as uow:
        ids = dispatch_repo.select_due_for_dispatch(
            uow.session,
            limit=settings.einvoice_dispatch_batch,
            per_organization=settings.einvoice_org_dispatch_share,
            redispatch_seconds=settings.einvoice_redispatch_seconds,
            budgets=account_budgets(uow.session, settings, limiter),
        )
        uow.commit()
    if ids:
        publisher.publish_submit_many(ids)
        log.info("dispatched %d due jobs", len(ids))
    return len(ids)


def dispatch_new_jobs(
    session_factory: sessionmaker[Session], publisher: Publisher, job_ids: Sequence[uuid.UUID],
    settings: Settings | None = None, limiter: object | None = None,
) -> int:
    """Publish the wake-ups of freshly inserted jobs that have none in flight; return how many.

    Used by the ``LISTEN einvoice_jobs`` listener for instant pickup of plain SQL inserts, with
    every notification that arrived together in one batch: one compare-and-set ``UPDATE`` marks
    them dispatched (a job the beat dispatcher or another listener already took is skipped),
    then, after the commit, their wake-ups are published (a large burst in fewer messages,
    :func:`einvoice.queueing.wakeup_chunks`). Given ``settings`` and the rate ``limiter``, an
    organization with its own account gets at most its budget of them (:func:`account_budgets`:
    none while a document is pending at DIAN, else the requests left in its window minus its
    jobs in flight); the others are left to the dispatcher, which hands them out fairly as the
    window frees.
    """
    with UnitOfWork(session_factory) as uow:
        budgets = account_budgets(uow.session, settings, limiter) if settings else {}
        won = dispatch_repo.mark_new_dispatched(uow.session, job_ids, caps=budgets)
        uow.commit()
    if won:
        publisher.publish_submit_many(won)
    return len(won)


def recover_expired_leases(session_factory: sessionmaker[Session], limit: int = 1000) -> int:
    """Release jobs whose lease expired; record a ``lease_expired`` event each. Returns the count."""
    with UnitOfWork(session_factory) as uow:
        released = dispatch_repo.release_expired_leases(uow.session, limit=limit)
        for job_id, holder, unknown in released:
            decision = transition(JobState(JobStatus.PROCESSING),
                                  StepOutcome(Outcome.LEASE_EXPIRED, outcome_unknown=unknown),
                                  RetryPolicy())
            job_repo.add_event(
                uow.session, job_id, decision.event_type, code=decision.error_code,
                message=f"lease held by {holder or 'unknown worker'} expired; job re-queued"
                + ("; outcome unknown, will reconcile by reference code" if unknown else ""),
                metadata={"from": JobStatus.PROCESSING, "to": decision.status, "leased_by": holder,
                          "outcome_unknown": unknown},
            )
        uow.commit()
    if released:
        log.warning("recovered %d jobs with expired leases", len(released))
    return len(released)


def listen_for_new_jobs(
    dsn: str,
    on_jobs: Callable[[list[uuid.UUID]], object],
    stop: threading.Event,
    *,
    on_active: Callable[[], object] | None = None,
    on_webhooks: Callable[[list[uuid.UUID]], object] | None = None,
    poll_seconds: float = 1.0,
    standby_seconds: float = 5.0,
    gather_seconds: float = 0.01,
    quiet_seconds: float = 0.002,
    pause_seconds: float = 0.005,
    max_batch: int = 1000,
) -> None:
    """Block, calling ``on_jobs(job_ids)`` for the ``NOTIFY einvoice_jobs`` payloads until ``stop``.

    The migration's trigger notifies on every insert of a pending factus job, so plain SQL
    producers are picked up in milliseconds instead of at the next dispatcher tick.

    * **One active listener.** Every worker process runs this, but only the one holding the
      session-level advisory lock :data:`einvoice.db.listener.LISTENER_LOCK_KEY` listens; the
      others retry the lock every ``standby_seconds``. When the active worker dies its connection closes, the lock is
      released and a standby takes over. (Several listeners would each run the same ``UPDATE``
      for every insert; only one would win it.)
    * **Batches.** After the first notification, more are gathered while they keep coming:
      until ``quiet_seconds`` (2 ms) pass without one, ``gather_seconds`` (10 ms) after the
      first, or ``max_batch`` are in hand; then the batch is handed over in one call. A
      producer committing 1,000 inserts at once costs one ``UPDATE``, not 1,000.
    * **A job that arrives alone waits for nothing.** When the first notification comes after
      a pause (none for ``pause_seconds``, 5 ms) and nothing else has arrived with it, it is
      handed over at once, without the quiet wait: steady 100/s arrivals are 10 ms apart, and
      each one saves 2 ms of its insert-to-accepted time (benchmark B2). Notifications that
      follow each other closer than that (1,000/s producers) are gathered as above.
    * **Catch-up on becoming active.** Inserts committed before this connection's ``LISTEN``
      (while the worker started, while a standby waited for the lock, while PostgreSQL was
      away) sent their NOTIFY to nobody. Right after ``LISTEN``, ``on_active()`` runs once
      (the workers pass :func:`dispatch_due_jobs`), so those jobs start at once instead of at
      the next beat tick, or never on a deployment that runs workers without beat.
    * A lost connection (PostgreSQL restarted) is re-opened after a pause, then caught up as
      above.

    Args:
        dsn: a libpq URL (``postgresql://...``).
        on_jobs: called with each batch of new job ids; its exceptions are logged and swallowed.
        on_active: called once each time this listener becomes the active one, after ``LISTEN``
            (so nothing committed later is missed); its exceptions are logged and swallowed.
        on_webhooks: when given, the listener also LISTENs on ``einvoice_webhooks`` (sent by
            the outcome trigger, migration 0010, when a final transition created webhook
            deliveries) and calls it with the job ids of each batch, so deliveries start in
            milliseconds instead of at the follow-up dispatcher's next tick; its exceptions
            are logged and swallowed.
    """
    while not stop.is_set():
        try:
            with listener.connect(dsn) as conn:
                while not stop.is_set():
                    if listener.try_become_listener(conn):
                        break
                    stop.wait(standby_seconds)
                if stop.is_set():
                    return
                listener.listen(conn, webhooks=on_webhooks is not None)
                log.info("job listener active")
                if on_active is not None:
                    _catch_up(on_active)
                last = float("-inf")  # when the previous batch's last notification was read
                while not stop.is_set():
                    batch = _entries(conn.notifies(timeout=poll_seconds, stop_after=1))
                    if not batch:
                        continue
                    _collect(conn, batch, after_pause=time.monotonic() - last > pause_seconds,
                             gather_seconds=gather_seconds, quiet_seconds=quiet_seconds,
                             max_batch=max_batch)
                    last = time.monotonic()
                    _hand_over(batch, on_jobs, on_webhooks)
        except listener.ConnectionLost as exc:
            log.warning("job listener lost PostgreSQL (%s); reconnecting", exc)
            stop.wait(2.0)


def _catch_up(on_active: Callable[[], object]) -> None:
    """Run the listener's catch-up; a failure is the beat dispatcher's to repair, not fatal."""
    try:
        on_active()
    except Exception:
        log.exception("job listener catch-up failed; the beat dispatcher will find those jobs")


def _collect(conn: Any, batch: list[str], *, after_pause: bool, gather_seconds: float,
             quiet_seconds: float, max_batch: int) -> None:
    """Complete ``batch`` (it holds the first payload) before it is handed over.

    After a pause, the payloads already received with the first one are taken without waiting
    (``notifies(timeout=0)`` only polls); if there are none, the job is alone and ``batch``
    goes as it is. Otherwise (a burst, or notifications that keep coming), :func:`_gather`.
    """
    if after_pause and len(batch) < max_batch:
        batch += _entries(conn.notifies(timeout=0.0, stop_after=max_batch - len(batch)))
        if len(batch) == 1:
            return
    _gather(conn, batch, gather_seconds, quiet_seconds, max_batch)


def _gather(conn: Any, batch: list[str], gather_seconds: float, quiet_seconds: float,
            max_batch: int) -> None:
    """Append to ``batch`` the notification payloads that keep arriving on ``conn`` (a psycopg
    connection that LISTENs): stop after ``quiet_seconds`` without one, ``gather_seconds`` in
    all, or at ``max_batch`` payloads."""
    deadline = time.monotonic() + gather_seconds
    while len(batch) < max_batch:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        more = _entries(conn.notifies(timeout=min(quiet_seconds, left),
                                      stop_after=max_batch - len(batch)))
        if not more:
            return
        batch += more


#: How a batch entry from ``einvoice_webhooks`` is told apart from a job id of ``einvoice_jobs``
#: (entries stay strings, so the gathering code does not care where they came from).
_WEBHOOKS_TAG = "webhooks:"


def _entries(notifies: Any) -> list[str]:
    """The batch entries of ``notifies``: a job id, or :data:`_WEBHOOKS_TAG` + a job id."""
    return [n.payload if getattr(n, "channel", listener.CHANNEL) == listener.CHANNEL
            else _WEBHOOKS_TAG + n.payload for n in notifies]


def _parse_ids(payloads: list[str], channel: str) -> list[uuid.UUID]:
    ids: list[uuid.UUID] = []
    for payload in payloads:
        try:
            ids.append(uuid.UUID(payload))
        except ValueError:
            log.warning("ignoring a malformed %s notification %r", channel, payload[:80])
    return ids


def _hand_over(entries: list[str], on_jobs: Callable[[list[uuid.UUID]], object],
               on_webhooks: Callable[[list[uuid.UUID]], object] | None = None) -> None:
    jobs = [e for e in entries if not e.startswith(_WEBHOOKS_TAG)]
    if jobs:
        ids = _parse_ids(jobs, listener.CHANNEL)
        try:
            on_jobs(ids)
        except Exception:
            log.exception("could not dispatch %d new jobs; the dispatcher will", len(ids))
    if on_webhooks is not None and len(jobs) < len(entries):
        ids = _parse_ids([e[len(_WEBHOOKS_TAG):] for e in entries if e.startswith(_WEBHOOKS_TAG)],
                         listener.WEBHOOKS_CHANNEL)
        try:
            on_webhooks(ids)
        except Exception:
            log.exception("could not dispatch the webhook deliveries of %d jobs; the follow-up "
                          "dispatcher will", len(ids))
