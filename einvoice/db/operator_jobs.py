"""The operator's job queries and actions: look a job up by the id an operator typed, list and
count jobs, show a job's events, and put a job back, bring it forward or cancel it.

Called by :mod:`einvoice.services.operator` (the ``einvoice jobs`` commands) and
:mod:`einvoice.services.documents`; nothing here commits (STYLE.md habit 4). The worker's
statements are :mod:`einvoice.db.jobs`.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from einvoice.db.jobs import get_job
from einvoice.db.models import (
    NON_FINAL_JOB_STATUSES,
    ElectronicInvoicingEvent,
    ElectronicInvoicingJob,
)
from einvoice.domain.jobs import JobStatus
from einvoice.errors import JobError

Job = ElectronicInvoicingJob


# --------------------------------------------------------------------------------------------
# Looking a job up by an operator's id
# --------------------------------------------------------------------------------------------


def parse_job_id(job_id: uuid.UUID | str) -> uuid.UUID:
    """``job_id`` as a UUID (an operator typed it, or a caller passed one).

    Raises:
        JobError: ``bad_job_id`` when it is not a UUID.
    """
    try:
        return uuid.UUID(str(job_id))
    except ValueError:
        raise JobError(f"{job_id!r} is not a job id (a UUID)", reason="bad_job_id") from None


def require_job(session: Session, job_id: uuid.UUID | str, *, for_update: bool = False) -> Job:
    """The job ``job_id`` (row-locked with ``for_update``), for an operator action or view.

    Raises:
        JobError: ``bad_job_id`` (not a UUID) or ``job_not_found``.
    """
    key = parse_job_id(job_id)
    job = get_job(session, key, for_update=for_update)
    if job is None:
        raise JobError(f"no job {key}", reason="job_not_found")
    return job


def active_job_for_invoice(session: Session, invoice_id: uuid.UUID, document_type: str) -> Job | None:
    """The non-final job of (invoice, document type), or None (at most one exists: unique index)."""
    return session.scalars(
        select(Job).where(
            Job.invoice_id == invoice_id,
            Job.document_type == document_type,
            Job.status.in_(NON_FINAL_JOB_STATUSES),
        )
    ).one_or_none()


def accepted_job_for_invoice(session: Session, invoice_id: uuid.UUID,
                             document_type: str) -> Job | None:
    """The accepted job of (invoice, document type), or None (at most one: unique index)."""
    return session.scalars(select(Job).where(
        Job.invoice_id == invoice_id, Job.document_type == document_type,
        Job.status == JobStatus.ACCEPTED).limit(1)).one_or_none()


# --------------------------------------------------------------------------------------------
# Operator views and actions
# --------------------------------------------------------------------------------------------


def counts_by_organization_and_status(session: Session) -> list[tuple[int, str, int]]:
    """``(organization_id, status, jobs)`` for every pair that has jobs."""
    rows = session.execute(select(Job.organization_id, Job.status, func.count())
                           .group_by(Job.organization_id, Job.status)).all()
    return [(org, status, int(count)) for org, status, count in rows]


def oldest_active_age_seconds(session: Session) -> float | None:
    """Seconds since the oldest ``pending``, ``processing`` or ``sent`` job was created (by
    PostgreSQL's clock), or None when there is none."""
    oldest = session.scalar(
        select(func.extract("epoch", func.now() - func.min(Job.created_at))).where(
            Job.status.in_(NON_FINAL_JOB_STATUSES)))
    return float(oldest) if oldest is not None else None


def count_recent(session: Session, status: str, *, hours: int = 1) -> int:
    """How many jobs are ``status`` and were updated within the last ``hours`` hours."""
    recent = func.now() - func.make_interval(0, 0, 0, 0, hours)
    return int(session.scalar(
        select(func.count()).where(Job.status == status, Job.updated_at >= recent)) or 0)


def newest_jobs(session: Session, *, status: str | None = None,
                organization_id: int | None = None, limit: int = 50) -> list[Job]:
    """At most ``limit`` jobs, newest first, of ``status`` and ``organization_id`` when given."""
    stmt = select(Job).order_by(Job.created_at.desc()).limit(limit)
    if status:
        stmt = stmt.where(Job.status == status)
    if organization_id is not None:
        stmt = stmt.where(Job.organization_id == organization_id)
    return list(session.scalars(stmt))


def failed_job_ids(session: Session) -> list[uuid.UUID]:
    """Ids of every ``failed`` job, oldest first."""
    return list(session.scalars(select(Job.id).where(Job.status == JobStatus.FAILED)
                                .order_by(Job.created_at)))


def bring_forward(session: Session, job_ids: Sequence[uuid.UUID]) -> None:
    """Make the ``pending`` jobs among ``job_ids`` due now and not dispatched (the next
    dispatcher round publishes them). Nothing commits."""
    session.execute(update(Job).where(Job.id.in_(list(job_ids)), Job.status == JobStatus.PENDING)
                    .values(next_retry_at=func.now(), dispatched_at=None))


def requeue(session: Session, job: Job, status: JobStatus = JobStatus.PENDING) -> None:
    """Put a final ``job`` back to ``status`` (``pending``, as the domain decides), due now,
    with no attempt counted and no error (its ``reference_code``, ``outcome_unknown`` and
    history stay). Flushed, not committed."""
    job.status = status
    job.attempt_count = 0
    job.next_retry_at = func.now()
    job.dispatched_at = None
    job.lease_expires_at = None
    job.processed_at = None
    job.updated_at = func.now()
    job.error_code = None
    job.error_message = None
    session.flush()


def set_cancelled(session: Session, job: Job, status: JobStatus = JobStatus.CANCELLED) -> None:
    """Mark ``job`` ``cancelled`` (``status``, as the domain decides) now (its outcome no longer
    unknown). Flushed, not committed."""
    job.status = status
    job.processed_at = func.now()
    job.outcome_unknown = False
    job.updated_at = func.now()
    session.flush()


def events_for(session: Session, job_id: uuid.UUID) -> list[ElectronicInvoicingEvent]:
    """The job's events, oldest first."""
    return list(
        session.scalars(
            select(ElectronicInvoicingEvent)
            .where(ElectronicInvoicingEvent.job_id == job_id)
            .order_by(ElectronicInvoicingEvent.created_at, ElectronicInvoicingEvent.id)
        )
    )
