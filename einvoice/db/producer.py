"""The producer's job statements: enqueue an ERP's invoices as ``pending`` jobs.

Called by :mod:`einvoice.services.enqueue`; nothing here commits (STYLE.md habit 4). The
worker's statements are :mod:`einvoice.db.jobs`.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session, make_transient_to_detached

from einvoice.db import raw
from einvoice.db.models import NON_FINAL_JOB_STATUSES, ElectronicInvoicingJob
from einvoice.domain.jobs import JobStatus

Job = ElectronicInvoicingJob


# Jobs and their "enqueued" events in one statement (one round trip per producer call). The
# ON CONFLICT target names the partial unique index's predicate literally: with a bound parameter
# PostgreSQL could not match the index once psycopg prepares the statement (after 5 executions).
# Two spellings of the invoice filter: for one invoice, ``id = :invoice_id``, because PostgreSQL
# costs a generic plan of ``id = ANY(:array)`` for ten rows, finds it dearer than a custom plan
# for one and so plans the prepared statement again at every call (0.2 ms of its CPU per call in
# benchmark B4's one-job-per-transaction producer).
_INSERT_PENDING_JOBS = """
WITH new AS (
    INSERT INTO electronic_invoicing_jobs
           (organization_id, invoice_id, document_type, provider, status, max_attempts,
            dispatched_at)
    SELECT organization_id, id, :document_type, 'factus', 'pending', :max_attempts,
           CASE WHEN :dispatched THEN now() END
      FROM invoice_sales
     WHERE {invoices} AND organization_id IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM electronic_invoicing_jobs accepted
                        WHERE accepted.invoice_id = invoice_sales.id
                          AND accepted.document_type = :document_type
                          AND accepted.status = 'accepted')
        ON CONFLICT (invoice_id, document_type)
           WHERE status IN ('pending', 'processing', 'sent') DO NOTHING
    RETURNING *
), events AS (
    INSERT INTO electronic_invoicing_events (job_id, event_type, event_message, metadata,
                                             created_at)
    SELECT id, 'enqueued', :message,
           jsonb_build_object('to', 'pending', 'reference_code', reference_code),
           clock_timestamp()
      FROM new
)
SELECT * FROM new
"""


def insert_pending_jobs(
    session: Session,
    *,
    invoice_ids: Sequence[uuid.UUID],
    document_type: str,
    max_attempts: int,
    dispatched: bool = False,
    message: str = "enqueued",
) -> list[Job]:
    """Insert a ``pending`` factus job for each invoice, with its ``enqueued`` event, in one
    statement; return the new jobs (ORM objects in ``session``).

    ``INSERT ... SELECT`` from ``invoice_sales`` (each job takes its invoice's
    ``organization_id``) ``ON CONFLICT DO NOTHING`` on the partial unique index
    ``ux_ei_jobs_one_active_per_invoice``, so two concurrent producers cannot both insert. An
    invoice that does not exist (or has no organization), already has a non-final job of this
    document type, or already has an accepted document of it, gets no row and no event. A job
    after an ambiguous ending inherits its predecessor's ``reference_code`` and starts with
    ``outcome_unknown`` set (the insert trigger of migration 0006): ``RETURNING`` shows both.
    Each new job gets one ``enqueued`` event (``message``; metadata ``{"to": "pending",
    "reference_code": ...}``).

    Args:
        dispatched: stamp ``dispatched_at``: the caller publishes the wake-ups itself, so the
            ``NOTIFY`` trigger (migration 0004) stays silent. False: the trigger notifies the
            workers' listener when the transaction commits, and it publishes them.
    """
    if not invoice_ids:
        return []
    params: dict[str, Any] = {"document_type": document_type, "max_attempts": max_attempts,
                              "dispatched": dispatched, "message": message}
    if len(invoice_ids) == 1:
        statement, params["invoice_id"] = _INSERT_PENDING_JOB_RAW, invoice_ids[0]
    else:
        statement, params["invoice_ids"] = _INSERT_PENDING_JOBS_RAW, list(invoice_ids)
    rows = raw.execute(session, statement, params).fetchall()
    return [_loaded_job(session, row) for row in rows]


_INSERT_PENDING_JOB_RAW = raw.RawStatement.of(text(_INSERT_PENDING_JOBS.format(
    invoices="id = CAST(:invoice_id AS uuid)")))
_INSERT_PENDING_JOBS_RAW = raw.RawStatement.of(text(_INSERT_PENDING_JOBS.format(
    invoices="id = ANY(CAST(:invoice_ids AS uuid[]))")))


@functools.cache
def _job_attribute_keys() -> dict[str, str]:
    """Column name -> ``Job`` attribute name, for every column of the table."""
    mapper = Job.__mapper__
    return {column.name: mapper.get_property_by_column(column).key
            for column in Job.__table__.columns}


def _loaded_job(session: Session, row: Any) -> Job:
    """The ORM object of a whole ``electronic_invoicing_jobs`` row read through :mod:`raw`
    (``RETURNING *``), persistent in ``session`` as if a query had loaded it: no pending
    changes, in the identity map, refreshed like any loaded object.

    Benchmark B4: loading the row through ``select(Job).from_statement(...)`` cost the producer
    0.29 ms of CPU per ``enqueue_invoice`` call of 0.68 ms (SQLAlchemy's execution context and
    its match of 28 result columns by name), for one job per call.
    """
    keys = _job_attribute_keys()
    job = Job(**{keys[name]: value for name, value in zip(row._fields, row, strict=True)})
    make_transient_to_detached(job)
    session.add(job)
    return job


def current_jobs_for_invoices(session: Session, invoice_ids: Sequence[uuid.UUID],
                              document_type: str) -> list[Job]:
    """The jobs of ``document_type`` of these invoices that stand for their document: the
    accepted one, else the non-final one (at most one of each per invoice: unique indexes).

    Returns:
        At most one job per invoice; an invoice with neither is absent.
    """
    rows = session.scalars(select(Job).where(
        Job.invoice_id.in_(list(invoice_ids)), Job.document_type == document_type,
        Job.status.in_((*NON_FINAL_JOB_STATUSES, JobStatus.ACCEPTED))))
    by_invoice: dict[uuid.UUID, Job] = {}
    for job in rows:
        if job.status == JobStatus.ACCEPTED or job.invoice_id not in by_invoice:
            by_invoice[job.invoice_id] = job
    return list(by_invoice.values())
