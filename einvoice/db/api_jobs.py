"""The HTTP API's reads of jobs, ranges and counts, always scoped to one organization.

Every statement filters on the caller's ``organization_id``: a job or invoice of another
organization is "not found", exactly like one that does not exist. Called by
:mod:`einvoice.services.api_invoices` and :mod:`einvoice.api`; nothing here commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, text, tuple_
from sqlalchemy.orm import Session

from einvoice.db import raw
from einvoice.db.models import ElectronicInvoicingJob, InvoiceSale, InvoiceSequence

Job = ElectronicInvoicingJob

_INVOICE_ORGANIZATION = raw.RawStatement.of(
    select(InvoiceSale.organization_id).where(InvoiceSale.id == text("CAST(:invoice_id AS uuid)")))


def invoice_organization(session: Session, invoice_id: uuid.UUID) -> int | None:
    """The ``organization_id`` of ``invoice_sales`` row ``invoice_id`` (None: no such row, or
    a row without organization). One primary-key read on the hot path of the API's enqueue."""
    row = raw.execute(session, _INVOICE_ORGANIZATION, {"invoice_id": invoice_id}).fetchone()
    return None if row is None else row[0]


def job_of_organization(session: Session, organization_id: int, job_id: uuid.UUID, *,
                        for_update: bool = False) -> Job | None:
    """The job ``job_id`` if it belongs to ``organization_id`` (row-locked with
    ``for_update``), else None."""
    stmt = select(Job).where(Job.id == job_id, Job.organization_id == organization_id)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def list_jobs(
    session: Session,
    organization_id: int,
    *,
    statuses: Sequence[str] = (),
    document_type: str | None = None,
    invoice_id: uuid.UUID | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    after: tuple[datetime, uuid.UUID] | None = None,
    limit: int = 50,
) -> list[Job]:
    """The organization's jobs, newest first (``created_at``, then ``id``, both descending).

    Args:
        statuses: keep jobs in one of these statuses (empty: all).
        created_from / created_to: ``created_from <= created_at < created_to`` (UTC).
        after: the (created_at, id) of the last job of the previous page (keyset pagination:
            stable while new jobs arrive).
        limit: at most this many rows.
    """
    stmt = select(Job).where(Job.organization_id == organization_id)
    if statuses:
        stmt = stmt.where(Job.status.in_(list(statuses)))
    if document_type is not None:
        stmt = stmt.where(Job.document_type == document_type)
    if invoice_id is not None:
        stmt = stmt.where(Job.invoice_id == invoice_id)
    if created_from is not None:
        stmt = stmt.where(Job.created_at >= created_from)
    if created_to is not None:
        stmt = stmt.where(Job.created_at < created_to)
    if after is not None:
        stmt = stmt.where(tuple_(Job.created_at, Job.id) < tuple_(*after))
    return list(session.scalars(stmt.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))


def counts_by_status(session: Session, organization_id: int) -> dict[str, int]:
    """``{status: jobs}`` of the organization (statuses without jobs are absent)."""
    rows = session.execute(select(Job.status, func.count()).where(
        Job.organization_id == organization_id).group_by(Job.status)).all()
    return {status: int(count) for status, count in rows}


def oldest_active_age_seconds(session: Session, organization_id: int,
                              statuses: Sequence[str]) -> float | None:
    """Seconds since the organization's oldest job in ``statuses`` was created (PostgreSQL's
    clock), or None when it has none."""
    oldest = session.scalar(select(func.extract("epoch", func.now() - func.min(Job.created_at)))
                            .where(Job.organization_id == organization_id,
                                   Job.status.in_(list(statuses))))
    return float(oldest) if oldest is not None else None


def numbering_ranges(session: Session, organization_id: int) -> list[InvoiceSequence]:
    """The organization's numbering ranges (``invoice_sequences``): active first, then by
    document type and id."""
    return list(session.scalars(
        select(InvoiceSequence).where(InvoiceSequence.organization_id == organization_id)
        .order_by(InvoiceSequence.is_active.desc().nulls_last(), InvoiceSequence.document_type,
                  InvoiceSequence.id)))


def notify_job(session: Session, job_id: uuid.UUID) -> None:
    """``NOTIFY einvoice_jobs`` with the job's id when the transaction commits: the workers'
    job listener publishes its wake-up, as for an inserted job (migration 0004's trigger)."""
    session.execute(text("SELECT pg_notify('einvoice_jobs', CAST(:job_id AS text))"),
                    {"job_id": str(job_id)})


def ping(session: Session) -> None:
    """``SELECT 1``: raises ``sqlalchemy.exc.DBAPIError`` when PostgreSQL cannot answer."""
    session.execute(text("SELECT 1"))
