"""The dispatcher and the lease sweeper: the database repairs the broker (issue 4, items 2 and 7).

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
import uuid
from collections.abc import Callable

from sqlalchemy.orm import Session, sessionmaker

from einvoice.db import jobs as job_repo
from einvoice.db.uow import UnitOfWork
from einvoice.queueing import Publisher
from einvoice.settings import Settings

log = logging.getLogger(__name__)


def dispatch_due_jobs(
    session_factory: sessionmaker[Session], publisher: Publisher, settings: Settings
) -> int:
    """Publish ``einvoice.submit_invoice`` for due jobs; return how many were published.

    Selection and marking happen in one short transaction; messages are sent after it commits.
    A crash between commit and publish loses nothing: the jobs are re-published after
    ``EINVOICE_REDISPATCH_SECONDS``.
    """
    with UnitOfWork(session_factory) as uow:
        ids = job_repo.select_due_for_dispatch(
            uow.session,
            limit=settings.einvoice_dispatch_batch,
            per_organization=settings.einvoice_org_dispatch_share,
            redispatch_seconds=settings.einvoice_redispatch_seconds,
        )
        uow.commit()
    for job_id in ids:
        publisher.publish_submit(job_id)
    if ids:
        log.info("dispatched %d due jobs", len(ids))
    return len(ids)


def dispatch_one(
    session_factory: sessionmaker[Session], publisher: Publisher, job_id: uuid.UUID
) -> bool:
    """Publish the wake-up of one freshly inserted job unless one is already in flight.

    Used by the ``LISTEN einvoice_jobs`` listener for instant pickup of plain SQL inserts. A
    compare-and-set on ``dispatched_at`` makes sure that of several listening workers only one
    publishes. Returns True if this call published the message.
    """
    with UnitOfWork(session_factory) as uow:
        won = job_repo.mark_dispatched_if_new(uow.session, job_id)
        uow.commit()
    if not won:
        return False
    publisher.publish_submit(job_id)
    return True


def recover_expired_leases(session_factory: sessionmaker[Session], limit: int = 1000) -> int:
    """Release jobs whose lease expired; record a ``lease_expired`` event each. Returns the count."""
    with UnitOfWork(session_factory) as uow:
        released = job_repo.release_expired_leases(uow.session, limit=limit)
        for job_id, holder, unknown in released:
            job_repo.add_event(
                uow.session, job_id, "lease_expired", code="lease_expired",
                message=f"lease held by {holder or 'unknown worker'} expired; job re-queued"
                + ("; outcome unknown, will reconcile by reference code" if unknown else ""),
                metadata={"from": "processing", "to": "pending", "leased_by": holder,
                          "outcome_unknown": unknown},
            )
        uow.commit()
    if released:
        log.warning("recovered %d jobs with expired leases", len(released))
    return len(released)


def listen_for_new_jobs(
    dsn: str,
    on_job: Callable[[uuid.UUID], None],
    stop: threading.Event,
    *,
    poll_seconds: float = 1.0,
) -> None:
    """Block, calling ``on_job(job_id)`` for every ``NOTIFY einvoice_jobs`` until ``stop`` is set.

    The migration's trigger notifies on every insert of a pending factus job, so plain SQL
    producers are picked up in milliseconds instead of at the next dispatcher tick. A lost
    connection (PostgreSQL restarted) is re-opened after a pause; notifications sent meanwhile are
    not lost work, because the beat dispatcher finds those jobs anyway.

    Args:
        dsn: a libpq URL (``postgresql://...``).
        on_job: called with each new job id; its exceptions are logged and swallowed.
    """
    import psycopg  # noqa: PLC0415 - only the listener talks to psycopg directly

    while not stop.is_set():
        try:
            with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
                conn.execute("LISTEN einvoice_jobs")
                while not stop.is_set():
                    for note in conn.notifies(timeout=poll_seconds, stop_after=1000):
                        try:
                            on_job(uuid.UUID(note.payload))
                        except Exception:  # noqa: BLE001 - the dispatcher repairs any miss
                            log.exception("could not dispatch job %s", note.payload)
        except psycopg.OperationalError as exc:
            log.warning("job listener lost PostgreSQL (%s); reconnecting", exc)
            stop.wait(2.0)
