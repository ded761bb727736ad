"""Producers: turn "validate this invoice" into a pending job (issue 4, "Producers").

The Python API for ERPs written in Python::

    with Session(engine) as session:            # the ERP's own transaction
        job = enqueue_invoice(session, invoice_id)
        session.commit()                        # the wake-up is published only now

ERPs in other languages insert the row with plain SQL instead; the dispatcher picks it up.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from einvoice.db import jobs as job_repo
from einvoice.db.models import ElectronicInvoicingJob, InvoiceSale
from einvoice.db.uow import add_after_commit
from einvoice.errors import JobError
from einvoice.queueing import Publisher, default_publisher
from einvoice.settings import get_settings

DOCUMENT_TYPES = ("invoice", "credit_note", "debit_note", "support_document")


def enqueue_invoice(
    session: Session,
    invoice_id: uuid.UUID | str,
    document_type: str = "invoice",
    *,
    publisher: Publisher | None = None,
    max_attempts: int | None = None,
) -> ElectronicInvoicingJob:
    """Create (or return) the job that gets ``invoice_id`` validated.

    Inserts a ``pending`` row in ``electronic_invoicing_jobs`` (provider ``factus``, a stable
    ``reference_code`` from the database default, ``max_attempts`` from
    ``EINVOICE_MAX_ATTEMPTS``) in the caller's transaction, with an ``enqueued`` event, and
    publishes ``einvoice.submit_invoice`` only after that transaction commits; a rollback
    publishes nothing. If the invoice already has a non-final job of this document type, that job
    is returned and nothing is inserted or published.

    Args:
        session: the caller's session; this function flushes but never commits.
        invoice_id: ``invoice_sales.id``.
        document_type: ``invoice`` or ``credit_note`` (``debit_note``/``support_document`` are
            accepted by the schema and rejected by the worker until supported).
        publisher: where the wake-up goes (default: the process's Celery publisher).
    Returns:
        The job row (``status`` pending, or the existing job's status).
    Raises:
        JobError: unknown invoice, or an unknown document type.
    """
    if document_type not in DOCUMENT_TYPES:
        raise JobError(f"unknown document_type {document_type!r}", reason="unknown_document_type")
    invoice_uuid = uuid.UUID(str(invoice_id))
    job = job_repo.insert_pending_job(
        session,
        invoice_id=invoice_uuid,
        document_type=document_type,
        max_attempts=max_attempts or get_settings().einvoice_max_attempts,
        dispatched=True,
    )
    if job is None:  # no such invoice, or it has an active job (maybe a concurrent producer's)
        existing = job_repo.active_job_for_invoice(session, invoice_uuid, document_type)
        if existing is not None:
            return existing
        raise JobError(f"invoice_sales row {invoice_uuid} not found (or has no organization_id)",
                       reason="invoice_not_found")
    job_repo.add_events(session, job.id, [(
        "enqueued", None, "enqueued by the Python producer",
        {"to": "pending", "reference_code": job.reference_code})])
    sender = publisher or default_publisher()
    job_id = job.id
    add_after_commit(session, lambda: sender.publish_submit(job_id))
    return job


def invoices_without_job(
    session: Session, organization_id: int, document_type: str = "invoice"
) -> list[uuid.UUID]:
    """Ids of the organization's invoices of ``document_type`` that have no job at all yet.

    ``invoice_sales.document_type`` NULL counts as ``invoice`` (the ERP's default).
    """
    has_job = select(ElectronicInvoicingJob.id).where(
        ElectronicInvoicingJob.invoice_id == InvoiceSale.id,
        ElectronicInvoicingJob.document_type == document_type,
    )
    doc_filter = (
        (InvoiceSale.document_type == document_type) | InvoiceSale.document_type.is_(None)
        if document_type == "invoice"
        else InvoiceSale.document_type == document_type
    )
    return list(
        session.scalars(
            select(InvoiceSale.id)
            .where(InvoiceSale.organization_id == organization_id, doc_filter, ~has_job.exists())
            .order_by(InvoiceSale.issue_date.nulls_last(), InvoiceSale.id)
        )
    )
