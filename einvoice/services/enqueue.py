"""Producers: turn "validate this invoice" into a pending job.

The Python API for ERPs written in Python::

    with Session(engine) as session:            # the ERP's own transaction
        job = enqueue_invoice(session, invoice_id)
        session.commit()                        # the workers are woken only now

Both this call and an ERP's plain SQL insert leave the wake-up to the database: the row's
``INSERT`` trigger (migration 0004) sends ``NOTIFY einvoice_jobs``, which PostgreSQL delivers
only when the transaction commits, and the workers' job listener publishes the Celery message
(the dispatcher's round catches any it missed). So the producer needs only the database, not
Redis or Celery, and a rollback wakes nobody.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from einvoice.db import invoices as invoice_repo
from einvoice.db import producer as producer_repo
from einvoice.db.models import ElectronicInvoicingJob
from einvoice.db.uow import add_after_commit
from einvoice.errors import JobError
from einvoice.queueing import Publisher
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
    ``EINVOICE_MAX_ATTEMPTS``) in the caller's transaction, with an ``enqueued`` event, in one
    statement. The workers are woken once that transaction commits, by the ``NOTIFY`` of the
    row's trigger (the job listener publishes ``einvoice.submit_invoice``), or, with a
    ``publisher``, by this call after the commit; a rollback wakes nobody. If the invoice already
    has an accepted document of this type, its accepted job is returned (one legal document per
    invoice: nothing is inserted, nothing is ever sent again); if it has a non-final job, that
    job is returned; in both cases nothing is inserted or published. A new job of an invoice
    whose last job ended with its outcome unknown reuses that job's ``reference_code`` (the
    database's insert trigger), so Factus's deduplication protects it. (:func:`enqueue_invoices`
    does the same for many invoices at once.)

    Args:
        session: the caller's session; this function flushes but never commits.
        invoice_id: ``invoice_sales.id``.
        document_type: ``invoice`` or ``credit_note`` (``debit_note``/``support_document`` are
            accepted by the schema and rejected by the worker until supported).
        publisher: publish the wake-up from this process after the commit (for a process that
            has the broker and wants to skip the listener's hop, or a test that records it);
            default None: the job listener publishes it. Benchmark B4, one call per
            transaction from 4 threads: about 1,085 calls/s without a publisher, 810/s with
            one (the publish costs this process 0.5 ms of CPU per call; docs/benchmarks.md).
    Returns:
        The job row: ``status`` pending (new), or the existing non-final or accepted job.
    Raises:
        JobError: unknown invoice, or an unknown document type.
    """
    [job] = enqueue_invoices(session, [invoice_id], document_type, publisher=publisher,
                             max_attempts=max_attempts)
    return job


def enqueue_invoices(
    session: Session,
    invoice_ids: Sequence[uuid.UUID | str],
    document_type: str = "invoice",
    *,
    publisher: Publisher | None = None,
    max_attempts: int | None = None,
) -> list[ElectronicInvoicingJob]:
    """:func:`enqueue_invoice` for many invoices in one round: one statement inserts all the
    jobs and their ``enqueued`` events; the wake-ups go after the commit (the listener's, or
    ``publisher``'s, which spreads a burst over few messages, :func:`wakeup_chunks`).

    Args:
        invoice_ids: ``invoice_sales.id`` values (duplicates are collapsed).
    Returns:
        One job per distinct invoice, in the order of ``invoice_ids``: the new job, or the
        invoice's accepted job, or its existing non-final job.
    Raises:
        JobError: an unknown document type, or invoices that do not exist (all of them named);
            the caller should roll back (jobs of the other invoices may have been inserted).
    """
    return [job for job, _created in enqueue_invoices_reporting(
        session, invoice_ids, document_type, publisher=publisher, max_attempts=max_attempts)]


def enqueue_invoices_reporting(
    session: Session,
    invoice_ids: Sequence[uuid.UUID | str],
    document_type: str = "invoice",
    *,
    publisher: Publisher | None = None,
    max_attempts: int | None = None,
) -> list[tuple[ElectronicInvoicingJob, bool]]:
    """:func:`enqueue_invoices`, saying for each job whether this call created it.

    Returns:
        ``(job, created)`` per distinct invoice in the order of ``invoice_ids``; ``created`` is
        False for an invoice's accepted or existing non-final job.
    Raises:
        As :func:`enqueue_invoices`.
    """
    if document_type not in DOCUMENT_TYPES:
        raise JobError(f"unknown document_type {document_type!r}", reason="unknown_document_type")
    wanted = list(dict.fromkeys(uuid.UUID(str(i)) for i in invoice_ids))
    inserted = producer_repo.insert_pending_jobs(
        session, invoice_ids=wanted, document_type=document_type,
        max_attempts=max_attempts or get_settings().einvoice_max_attempts,
        dispatched=publisher is not None, message="enqueued by the Python producer")
    by_invoice = {job.invoice_id: job for job in inserted}
    missing = [i for i in wanted if i not in by_invoice]
    if missing:  # accepted already, an active job exists (maybe a concurrent producer's), or none
        for job in producer_repo.current_jobs_for_invoices(session, missing, document_type):
            by_invoice[job.invoice_id] = job
        unknown = [str(i) for i in missing if i not in by_invoice]
        if unknown:
            raise JobError(f"invoice_sales rows not found (or without organization_id): "
                           f"{', '.join(unknown)}", reason="invoice_not_found")
    if inserted and publisher is not None:
        new_ids = [job.id for job in inserted]
        add_after_commit(session, lambda: publisher.publish_submit_many(new_ids))
    new = {job.id for job in inserted}
    return [(by_invoice[i], by_invoice[i].id in new) for i in wanted]


def invoices_without_job(
    session: Session, organization_id: int, document_type: str = "invoice"
) -> list[uuid.UUID]:
    """Ids of the organization's invoices of ``document_type`` that have no job at all yet,
    oldest issue date first (:func:`einvoice.db.invoices.invoices_without_job`).

    ``invoice_sales.document_type`` NULL counts as ``invoice`` (the ERP's default).
    """
    return invoice_repo.invoices_without_job(session, organization_id, document_type)
