"""The console's actions on a job, in the operator's scope and in the operator's name.

Each action reuses the service the CLI and the HTTP API use, with ``actor`` =
``console:<username>``, so the event it writes (``operator_retry``, ``cancelled``,
``email_requested``, ``credit_note_requested``) names the operator:

* :func:`retry`: :func:`einvoice.services.operator.retry_job`, then ``NOTIFY einvoice_jobs``
  so the workers' listener wakes the job when the transaction commits;
* :func:`cancel`: :func:`einvoice.services.operator.cancel_job` (deletes an unvalidated
  document at Factus first when one may exist);
* :func:`resend_email`: :func:`einvoice.services.documents.request_email_resend`;
* :func:`credit_note`: :func:`einvoice.services.api_invoices.create_credit_note` (a full
  credit note, DIAN correction concept 2 "anulación" by default), with an event on the
  invoice's job naming the operator and the note's job.

Each runs its own unit of work(s) (the scope check and the action in one transaction); another
organization's job is "not found". Errors are the underlying services' ``JobError`` reasons.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from einvoice.db import api_jobs as api_repo
from einvoice.db import jobs as job_repo
from einvoice.db.uow import UnitOfWork
from einvoice.services import api_invoices
from einvoice.services.console_views import require_job
from einvoice.services.operator import cancel_job, retry_job

#: DIAN correction concept of the console's credit note: 2, anulación (FACTUS_API.md §7.1).
FULL_REVERSAL_CONCEPT = 2


def retry(session_factory: sessionmaker[Session], scope: int | None, job_id: uuid.UUID, *,
          actor: str) -> str:
    """Re-queue a ``rejected`` or ``failed`` job (history and reference code kept).

    Returns:
        The job's new status.
    Raises:
        JobError: ``job_not_found``, ``not_retryable``, ``active_job_exists``,
            ``already_accepted``.
    """
    with UnitOfWork(session_factory) as uow:
        require_job(uow.session, scope, job_id, for_update=True)
        job = retry_job(uow.session, job_id, actor=actor)
        api_repo.notify_job(uow.session, job.id)
        status = job.status
        uow.commit()
    return status


def cancel(session_factory: sessionmaker[Session], clients: Any, settings: Any,
           scope: int | None, job_id: uuid.UUID, *, actor: str) -> str:
    """Cancel a job that is not accepted (see :func:`einvoice.services.operator.cancel_job`).

    Returns:
        A one-line description of what was done.
    Raises:
        JobError: ``job_not_found``, ``cannot_cancel_accepted``, ``already_cancelled``,
            ``in_flight``.
    """
    with UnitOfWork(session_factory) as uow:  # a read: the scope check
        require_job(uow.session, scope, job_id)
    return cancel_job(session_factory, clients, settings, job_id, actor=actor)


def resend_email(session_factory: sessionmaker[Session], scope: int | None, job_id: uuid.UUID,
                 to: str | None, *, actor: str, publisher: Any = None) -> str:
    """Queue one more e-mail of an accepted document (Factus allows 2 a day per document).

    Args:
        to: the address; None: the customer's, as in the document sent.
        publisher: where the follow-up's wake-up goes (default: the process's Celery
            publisher; beat re-publishes it if that fails).
    Returns:
        The address the e-mail goes to.
    Raises:
        JobError: ``job_not_found``, ``not_accepted``, ``email_unsupported``,
            ``bad_email_address``, ``no_email_address``.
    """
    from einvoice.services.documents import request_email_resend  # noqa: PLC0415

    with UnitOfWork(session_factory) as uow:
        require_job(uow.session, scope, job_id, for_update=True)
        followup = request_email_resend(uow.session, job_id, to, publisher=publisher,
                                        actor=actor)
        address = followup.to_address or ""
        uow.commit()
    return address


def credit_note(session_factory: sessionmaker[Session], scope: int | None, job_id: uuid.UUID,
                *, actor: str, notes: str | None = None,
                concept_code: int = FULL_REVERSAL_CONCEPT) -> uuid.UUID:
    """Issue the full credit note of an accepted invoice job and enqueue it.

    Returns:
        The credit note's job id.
    Raises:
        JobError: ``job_not_found``, ``not_accepted``.
        ApiInputError: a concept outside 1..6.
    """
    with UnitOfWork(session_factory) as uow:
        job = require_job(uow.session, scope, job_id, for_update=True)
        note_id, result = api_invoices.create_credit_note(
            uow.session, job.organization_id, job.id, concept_code=concept_code, lines=None,
            notes=notes)
        note_job = result.job
        job_repo.add_event(
            uow.session, job.id, "credit_note_requested", code=actor,
            message=f"full credit note requested by {actor}: job {note_job.id}",
            metadata={"actor": actor, "credit_note_invoice_id": str(note_id),
                      "credit_note_job_id": str(note_job.id), "concept_code": concept_code,
                      "created": result.created})
        note_job_id = note_job.id
        uow.commit()
    return note_job_id
