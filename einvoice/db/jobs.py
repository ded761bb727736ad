"""Job and event repository: every query on ``electronic_invoicing_jobs`` and ``..._events``.

Services call these functions inside a session they own; nothing here commits (STYLE.md habit 4).
Times are UTC ``datetime`` computed by PostgreSQL (``now()``) so that every worker agrees.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from einvoice.db.models import (
    NON_FINAL_JOB_STATUSES,
    ElectronicInvoicingEvent,
    ElectronicInvoicingJob,
)

Job = ElectronicInvoicingJob
DUE_STATUSES = ("pending", "sent")


def get_job(session: Session, job_id: uuid.UUID, *, for_update: bool = False) -> Job | None:
    """The job with ``job_id`` (row-locked with ``for_update``), or None."""
    stmt = select(Job).where(Job.id == job_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def active_job_for_invoice(session: Session, invoice_id: uuid.UUID, document_type: str) -> Job | None:
    """The non-final job of (invoice, document type), or None (at most one exists: unique index)."""
    return session.scalars(
        select(Job).where(
            Job.invoice_id == invoice_id,
            Job.document_type == document_type,
            Job.status.in_(NON_FINAL_JOB_STATUSES),
        )
    ).one_or_none()


def insert_pending_job(
    session: Session,
    *,
    organization_id: int,
    invoice_id: uuid.UUID,
    document_type: str,
    max_attempts: int,
) -> Job | None:
    """Insert a ``pending`` factus job; None if the invoice already has a non-final one.

    Uses ``INSERT ... ON CONFLICT DO NOTHING`` on the partial unique index
    ``ux_ei_jobs_one_active_per_invoice``, so two concurrent producers cannot both insert.
    """
    stmt = (
        insert(Job)
        .values(
            organization_id=organization_id,
            invoice_id=invoice_id,
            document_type=document_type,
            provider="factus",
            status="pending",
            max_attempts=max_attempts,
        )
        .on_conflict_do_nothing(
            index_elements=["invoice_id", "document_type"],
            # A literal predicate: with bound parameters PostgreSQL cannot match the partial
            # index once psycopg prepares the statement (after 5 executions).
            index_where=text("status IN ('pending', 'processing', 'sent')"),
        )
        .returning(Job.id)
    )
    job_id = session.execute(stmt).scalar_one_or_none()
    return None if job_id is None else get_job(session, job_id)


def mark_dispatched(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    """Record that a wake-up message was published now for ``job_ids``."""
    if job_ids:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(dispatched_at=func.now()))


def select_due_for_dispatch(
    session: Session, *, limit: int, per_organization: int, redispatch_seconds: int
) -> list[uuid.UUID]:
    """Ids of due jobs to publish now, fair across organizations, marked as dispatched.

    A job is due when it is ``pending`` or ``sent`` (DIAN slow, awaiting re-check), its
    ``next_retry_at`` has passed, and no message was published for it within
    ``redispatch_seconds`` (so a Redis that lost its queue is repaired, while a job whose message
    is still queued is not published twice). Each organization gets at most
    ``per_organization`` jobs in flight (dispatched and not yet final), so one organization's
    backlog cannot fill the queue ahead of another's (issue 4, "Multi-tenant").

    Rows are locked with ``FOR UPDATE SKIP LOCKED`` while being marked, so concurrent
    dispatchers never publish the same job twice in one round. Returns at most ``limit`` ids,
    oldest ``next_retry_at`` first within each organization.
    """
    stale = text(f"now() - interval '{int(redispatch_seconds)} seconds'")
    due = (
        select(Job.id, Job.organization_id, Job.next_retry_at)
        .where(
            Job.status.in_(DUE_STATUSES),
            Job.provider == "factus",
            Job.next_retry_at <= func.now(),
            or_(Job.dispatched_at.is_(None), Job.dispatched_at < stale),
        )
        .order_by(Job.next_retry_at)
        .limit(limit * 4)
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    in_flight = (
        select(Job.organization_id, func.count().label("n"))
        .where(
            Job.provider == "factus",
            or_(
                Job.status == "processing",
                and_(Job.status.in_(DUE_STATUSES), Job.dispatched_at >= stale),
            ),
        )
        .group_by(Job.organization_id)
        .cte("in_flight")
    )
    ranked = (
        select(
            due.c.id,
            due.c.next_retry_at,
            (
                func.row_number().over(
                    partition_by=due.c.organization_id, order_by=due.c.next_retry_at
                )
                + func.coalesce(in_flight.c.n, 0)
            ).label("slot"),
        )
        .select_from(due.outerjoin(in_flight, in_flight.c.organization_id == due.c.organization_id))
        .subquery()
    )
    picked = (
        select(ranked.c.id)
        .where(ranked.c.slot <= per_organization)
        .order_by(ranked.c.slot, ranked.c.next_retry_at)
        .limit(limit)
    )
    ids = list(session.scalars(picked))
    mark_dispatched(session, ids)
    return ids


def claim(
    session: Session, job_id: uuid.UUID, *, lease_seconds: int, worker: str
) -> Job | None:
    """Atomically take a due job: ``pending``/``sent`` → ``processing`` with a lease.

    A compare-and-set ``UPDATE ... WHERE status IN ('pending','sent') AND next_retry_at <= now()``:
    a second delivery of the same message, a message for a job already claimed or final, or an
    early message for a job that is not due yet, all get None and do nothing (STYLE.md habit 5).
    On success ``attempt_count`` is incremented and the refreshed job is returned.
    """
    stmt = (
        update(Job)
        .where(
            Job.id == job_id,
            Job.provider == "factus",
            Job.status.in_(DUE_STATUSES),
            Job.next_retry_at <= func.now(),
        )
        .values(
            status="processing",
            attempt_count=Job.attempt_count + 1,
            lease_expires_at=func.now() + text(f"interval '{int(lease_seconds)} seconds'"),
            leased_by=worker,
            updated_at=func.now(),
        )
        .returning(Job)
        .execution_options(populate_existing=True)
    )
    # One round trip: the UPDATE returns the claimed row as an ORM object.
    return session.scalars(stmt).one_or_none()


def release_expired_leases(session: Session, *, limit: int) -> list[tuple[uuid.UUID, str | None, bool]]:
    """Put ``processing`` jobs whose lease expired back to ``pending``, due now.

    Their worker died or hung. ``outcome_unknown`` is kept: a job that may have reached Factus is
    reconciled by reference code before any re-send. Returns (job id, former holder,
    outcome_unknown) of each released job.
    """
    expired = (
        select(Job.id)
        .where(
            Job.status == "processing",
            Job.provider == "factus",
            Job.lease_expires_at < func.now(),
        )
        .order_by(Job.lease_expires_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    stmt = (
        update(Job)
        .where(Job.id.in_(expired.scalar_subquery()))
        .values(
            status="pending",
            next_retry_at=func.now(),
            lease_expires_at=None,
            dispatched_at=None,
            updated_at=func.now(),
        )
        .returning(Job.id, Job.leased_by, Job.outcome_unknown)
    )
    return [(r[0], r[1], bool(r[2])) for r in session.execute(stmt)]


def add_event(
    session: Session,
    job_id: uuid.UUID,
    event_type: str,
    *,
    code: str | None = None,
    message: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> ElectronicInvoicingEvent:
    """Append one row to ``electronic_invoicing_events`` (issue 4, "Event history").

    Args:
        event_type: what happened (``enqueued``, ``claimed``, ``accepted``, ...).
        code: an HTTP status, a DIAN rule or einvoice's reason code.
        metadata: JSON-able details (attempt, latency_ms, from/to status, number); callers never
            put a secret or token in it.
    """
    # clock_timestamp(), not now(): now() is the same for a whole transaction, and the events
    # of one transaction must keep their order. One INSERT per event keeps that order too.
    event = ElectronicInvoicingEvent(
        job_id=job_id, event_type=event_type, event_code=code, event_message=message,
        metadata_=metadata, created_at=func.clock_timestamp(),
    )
    session.add(event)
    session.flush([event])
    return event


def events_for(session: Session, job_id: uuid.UUID) -> list[ElectronicInvoicingEvent]:
    """The job's events, oldest first."""
    return list(
        session.scalars(
            select(ElectronicInvoicingEvent)
            .where(ElectronicInvoicingEvent.job_id == job_id)
            .order_by(ElectronicInvoicingEvent.created_at, ElectronicInvoicingEvent.id)
        )
    )


def db_now(session: Session) -> datetime:
    """PostgreSQL's ``now()`` (UTC), the clock every worker agrees on."""
    return session.execute(select(func.now())).scalar_one()


def job_by_reference(session: Session, reference_code: str) -> Job | None:
    """The job whose Factus ``reference_code`` is ``reference_code``, or None (not ours)."""
    return session.scalars(select(Job).where(Job.reference_code == reference_code)).one_or_none()


def mark_new_dispatched(session: Session, job_ids: Sequence[uuid.UUID]) -> list[uuid.UUID]:
    """Compare-and-set ``dispatched_at`` on those of ``job_ids`` that are pending and have none.

    One ``UPDATE ... WHERE id = ANY(...)`` for a whole batch of ``NOTIFY`` payloads. Returns the
    ids this call marked (their wake-up is the caller's to publish); a job already dispatched,
    claimed or final is left alone, so two listeners or a listener and the beat dispatcher never
    publish the same job twice.
    """
    if not job_ids:
        return []
    return list(session.scalars(
        update(Job)
        .where(Job.id.in_(job_ids), Job.status == "pending", Job.provider == "factus",
               Job.dispatched_at.is_(None))
        .values(dispatched_at=func.now())
        .returning(Job.id)
    ))


def pending_blocker(
    session: Session, *, account: str, environment: str, document_type: str, exclude: uuid.UUID
) -> Job | None:
    """Our own job whose document waits at DIAN (``sent``) on this Factus account, if any.

    Factus refuses every create of a document type while one document of that type is pending
    (409, FACTUS_API.md §5.3), so other jobs of the account wait for it instead of calling.
    """
    return session.scalars(
        select(Job)
        .where(
            Job.status == "sent",
            Job.factus_account == account,
            Job.factus_environment == environment,
            Job.document_type == document_type,
            Job.id != exclude,
        )
        .order_by(Job.next_retry_at)
        .limit(1)
    ).first()
