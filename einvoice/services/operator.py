"""Operator actions and views over jobs. Every action is an event.

Functions that take a session never commit: the CLI commits. The actions that call Factus
(:func:`cancel_job`, :func:`create_range`) take a session factory instead and run each of their
transactions as a unit of work (:class:`einvoice.db.uow.UnitOfWork`), never holding one open
during an HTTP call. Times are UTC.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from einvoice.db import jobs as job_repo
from einvoice.db import operator_jobs as operator_repo
from einvoice.db import reference as ref_repo
from einvoice.db.models import ElectronicInvoicingEvent, ElectronicInvoicingJob, InvoiceSequence
from einvoice.db.uow import UnitOfWork
from einvoice.domain.jobs import (
    JobState,
    JobStatus,
    Outcome,
    RetryPolicy,
    StepOutcome,
    is_ambiguous_ending,
    new_reference_code,
    transition,
)
from einvoice.errors import EinvoiceError, JobError

Job = ElectronicInvoicingJob
log = logging.getLogger(__name__)


def _job(session: Session, job_id: uuid.UUID | str) -> Job:
    return operator_repo.require_job(session, job_id, for_update=True)


def status_report(session: Session) -> dict[str, Any]:
    """Counts by status and organization, oldest due pending age (s), failures in the last hour.

    Returns ``{"by_status": {status: n}, "by_organization": {org: {status: n}},
    "oldest_pending_age_s": float | None, "failed_last_hour": n, "rejected_last_hour": n}``.
    """
    by_status: dict[str, int] = {}
    by_org: dict[str, dict[str, int]] = {}
    for org, status, count in operator_repo.counts_by_organization_and_status(session):
        by_status[status] = by_status.get(status, 0) + count
        by_org.setdefault(str(org), {})[status] = count
    return {
        "by_status": by_status, "by_organization": by_org,
        "oldest_pending_age_s": operator_repo.oldest_active_age_seconds(session),
        "failed_last_hour": operator_repo.count_recent(session, JobStatus.FAILED, hours=1),
        "rejected_last_hour": operator_repo.count_recent(session, JobStatus.REJECTED, hours=1),
    }


def list_jobs(session: Session, *, status: str | None = None, organization_id: int | None = None,
              limit: int = 50) -> list[Job]:
    """Newest jobs first, optionally filtered by status and organization
    (:func:`einvoice.db.operator_jobs.newest_jobs`)."""
    return operator_repo.newest_jobs(session, status=status, organization_id=organization_id,
                                     limit=limit)


@dataclass
class JobDetail:
    """A job, a short summary of its payload, its event timeline, and the Factus account its
    organization submits with now (:class:`einvoice.services.accounts.AccountView`: configured,
    detected and effective API version), or None when unknown."""

    job: Job
    payload_summary: dict[str, Any]
    events: list[ElectronicInvoicingEvent]
    account: Any = None


def job_detail(session: Session, job_id: uuid.UUID | str, settings: Any = None) -> JobDetail:
    """The job, its payload summary (customer, items, total) and events; with ``settings``, also
    its organization's account as :func:`account_of_organization` finds it. Raises
    ``JobError``."""
    job = _job(session, job_id)
    payload = job.request_payload or {}
    customer = payload.get("customer") or {}
    summary = {
        "reference_code": payload.get("reference_code", job.reference_code),
        "numbering_range_id": payload.get("numbering_range_id"),
        "customer": customer.get("company") or customer.get("names"),
        "identification": customer.get("identification"),
        "items": len(payload.get("items") or []),
        "payment_form": payload.get("payment_form"),
    }
    account = (account_of_organization(session, settings, job.organization_id)
               if settings is not None else None)
    return JobDetail(job=job, payload_summary=summary,
                     events=operator_repo.events_for(session, job.id), account=account)


def account_of_organization(session: Session, settings: Any, organization_id: int) -> Any:
    """The :class:`einvoice.services.accounts.AccountView` an organization submits with in
    ``FACTUS_ENVIRONMENT``: its own active row, else the default account (None when neither);
    no secret read."""
    from einvoice.services.accounts import list_accounts  # noqa: PLC0415

    views = list_accounts(session, settings)
    own = [v for v in views if v.organization_id == organization_id and v.active
           and v.environment == settings.factus_environment]
    default = [v for v in views if v.organization_id is None]
    candidates = own or default
    return candidates[0] if candidates else None


#: Operator actions need no backoff: only the policy's presence (the decision's delay is 0).
_POLICY = RetryPolicy()


def retry_job(session: Session, job_id: uuid.UUID | str, *, actor: str = "operator",
              new_document: bool = False) -> Job:
    """Re-queue a ``failed`` or ``rejected`` job after its data was fixed.

    Keeps the row, its ``reference_code`` and its history; resets ``attempt_count`` and makes it
    due now. A job whose ending was ambiguous (:func:`einvoice.domain.jobs.is_ambiguous_ending`:
    its document may exist at Factus) is looked up by its reference code before anything is
    sent, so the retry adopts that document instead of creating a second one.

    Args:
        new_document: the operator's explicit decision that the invoice needs a new document:
            the job gets a fresh ``reference_code`` (a ``new_document`` event keeps the old one),
            and nothing is looked up. If the old reference did create a document at Factus, the
            invoice then has two: use it only when Factus support confirmed there is none.
    Returns:
        The job, ``pending`` and due now (flushed, not committed).
    Raises:
        JobError: ``not_retryable`` (any other status), ``active_job_exists`` (the invoice
            meanwhile got another non-final job), ``already_accepted`` (the invoice already has
            an accepted document of this type: it is never sent again; issue a credit note).
    """
    job = _job(session, job_id)
    if job.status not in (JobStatus.FAILED, JobStatus.REJECTED):
        raise JobError(f"job {job.id} is {job.status}; only failed or rejected jobs can be retried",
                       reason="not_retryable")
    _refuse_if_accepted(session, job)
    other = operator_repo.active_job_for_invoice(session, job.invoice_id, job.document_type)
    if other is not None:
        raise JobError(f"invoice {job.invoice_id} already has job {other.id} ({other.status})",
                       reason="active_job_exists")
    if new_document:
        assign_new_document(session, job, actor=actor)
    elif is_ambiguous_ending(job.status, job.error_code, bool(job.outcome_unknown)):
        job.outcome_unknown = True
    previous, code, message = job.status, job.error_code, job.error_message
    decision = transition(JobState(JobStatus(previous)),
                          StepOutcome(Outcome.OPERATOR_RETRY,
                                      outcome_unknown=bool(job.outcome_unknown)),
                          _POLICY)
    operator_repo.requeue(session, job, decision.status)
    job_repo.add_event(session, job.id, decision.event_type, code=code,
                       message=f"re-queued by {actor} (was {previous}: {message or ''})",
                       metadata={"from": previous, "to": decision.status, "actor": actor})
    return job


def _refuse_if_accepted(session: Session, job: Job) -> None:
    accepted = operator_repo.accepted_job_for_invoice(session, job.invoice_id, job.document_type)
    if accepted is not None and accepted.id != job.id:
        raise JobError(f"invoice {job.invoice_id} already has an accepted {job.document_type}: "
                       f"job {accepted.id}, document {accepted.document_number}; it is never sent "
                       "again (issue a credit note to correct it)", reason="already_accepted")


def assign_new_document(session: Session, job: Job, *, actor: str) -> str:
    """Give a job that has not been accepted a fresh ``reference_code``: the operator's explicit
    "this invoice needs a new document at Factus" (the old code's document, if any, is left as
    it is). Recorded as a ``new_document`` event with both codes and the actor.

    Args:
        job: a row-locked job that is not ``accepted`` (see :func:`_job`).
        actor: who decided it (recorded).
    Returns:
        The new reference code.
    Raises:
        JobError: ``already_accepted`` when the job is accepted.
    """
    if job.status == JobStatus.ACCEPTED:
        raise JobError(f"job {job.id} is accepted: its document is final",
                       reason="already_accepted")
    old = job.reference_code
    job.reference_code = new_reference_code()
    job.outcome_unknown = False
    job_repo.add_event(session, job.id, "new_document", code="new_reference",
                       message=f"{actor} asked for a new document: reference code {old} -> "
                       f"{job.reference_code} (a document under {old}, if any, is not reused)",
                       metadata={"old_reference_code": old,
                                 "new_reference_code": job.reference_code, "actor": actor})
    session.flush()
    return job.reference_code


def new_document_for_job(session: Session, job_id: uuid.UUID | str, *,
                         actor: str = "operator") -> Job:
    """:func:`assign_new_document` on a ``pending`` job (e.g. one just enqueued for an invoice
    whose last job ended with its outcome unknown, which inherited that job's reference code).

    Raises:
        JobError: unknown job, or a job that is not ``pending`` or was attempted already (its
            reference may have reached Factus; retry a final one with ``new_document=True``).
    """
    job = _job(session, job_id)
    if job.status != JobStatus.PENDING or job.attempt_count:
        raise JobError(f"job {job.id} is {job.status} after {job.attempt_count} attempt(s); only "
                       "a pending job never attempted gets a new document this way (retry a "
                       "failed one with --new-document)", reason="not_pending")
    assign_new_document(session, job, actor=actor)
    return job


def failed_job_ids(session: Session) -> list[uuid.UUID]:
    """Ids of every ``failed`` job (for ``einvoice jobs retry --failed``)."""
    return operator_repo.failed_job_ids(session)


def prepare_cancel(session: Session, job_id: uuid.UUID | str) -> Job:
    """Check that a job may be cancelled; returns it (row-locked). Raises ``JobError``.

    An accepted job cannot be cancelled: DIAN validated the document, so the way back is a credit
    note. A ``processing`` job is in flight: wait for its attempt to end.
    """
    job = _job(session, job_id)
    if job.status == JobStatus.ACCEPTED:
        raise JobError(f"job {job.id} is accepted (document {job.document_number} validated by "
                       "DIAN): it cannot be cancelled; issue a credit note instead",
                       reason="cannot_cancel_accepted")
    if job.status == JobStatus.CANCELLED:
        raise JobError(f"job {job.id} is already cancelled", reason="already_cancelled")
    if job.status == JobStatus.PROCESSING:
        raise JobError(f"job {job.id} is being submitted right now; try again in a minute",
                       reason="in_flight")
    return job


def mark_cancelled(session: Session, job: Job, *, actor: str, deleted_at_factus: str | None,
                   document_gone: bool = False) -> None:
    """Set the job ``cancelled`` with an event saying whether a Factus document was deleted.

    Args:
        document_gone: Factus confirmed the job's document is gone (deleted, or none there):
            required to cancel a ``sent`` job (:data:`einvoice.domain.jobs.GUARDED_TRANSITIONS`).
    Raises:
        IllegalTransitionError: the state machine forbids cancelling the job as it is.
    """
    previous = job.status
    decision = transition(JobState(JobStatus(previous)),
                          StepOutcome(Outcome.CANCEL, document_gone=document_gone), _POLICY)
    operator_repo.set_cancelled(session, job, decision.status)
    job_repo.add_event(session, job.id, decision.event_type, code=previous,
                       message=f"cancelled by {actor}"
                       + (f"; {deleted_at_factus}" if deleted_at_factus else ""),
                       metadata={"from": previous, "to": decision.status, "actor": actor})


@dataclass
class RangeView:
    """A numbering range with what an operator needs to know."""

    sequence: InvoiceSequence
    remaining: int | None
    days_to_expiry: int | None
    warning: str | None


def ranges_report(session: Session, today: datetime) -> list[RangeView]:
    """Every numbering range with remaining numbers and days to expiry, with warnings."""
    views = []
    for seq in ref_repo.sequences(session):
        remaining = (seq.range_end - seq.current_number + 1
                     if seq.range_end is not None and seq.current_number is not None else None)
        days = (seq.valid_until - today.date()).days if seq.valid_until else None
        warning = None
        if days is not None and days < 0:
            warning = "expired"
        elif remaining is not None and seq.alert_threshold is not None and remaining < seq.alert_threshold:
            warning = f"only {remaining} numbers left"
        elif days is not None and days <= 30:
            warning = f"expires in {days} days"
        views.append(RangeView(seq, remaining, days, warning))
    return views


def bring_forward(session: Session, job_ids: list[uuid.UUID]) -> None:
    """Make pending jobs due now (used after an operator fixed something; see
    :func:`einvoice.db.operator_jobs.bring_forward`). Does not commit."""
    operator_repo.bring_forward(session, job_ids)


def cancel_job(
    session_factory: Any,
    clients: Any,
    settings: Any,
    job_id: uuid.UUID | str,
    *,
    actor: str = "operator",
) -> str:
    """Cancel a job that is not accepted; delete its unvalidated document at Factus if one exists.

    A job that may have a document at Factus (``sent``: DIAN slow, or an unknown outcome) gets
    ``DELETE /v1/bills/destroy/reference/{ref}`` (or the credit-note path) first; a 404 means
    there was none. If Factus answers 409 because the document was validated meanwhile, the job
    is not cancelled: it is made due so that reconciliation records the acceptance.

    Args:
        session_factory: a ``sessionmaker``; clients: :class:`einvoice.factus.client.FactusClients`.
    Returns:
        A one-line description of what was done.
    Raises:
        JobError: the job cannot be cancelled (accepted, in flight, already cancelled, unknown).
    """
    from einvoice.factus.errors import ConflictError, NotFoundError  # noqa: PLC0415
    from einvoice.services.accounts import account_for_organization  # noqa: PLC0415

    with UnitOfWork(session_factory) as uow:  # a read: rolled back at the end of the block
        job = prepare_cancel(uow.session, job_id)
        may_exist = job.status == JobStatus.SENT or bool(job.outcome_unknown)
        reference, doc_type, key = job.reference_code, job.document_type, job.id
        account = (account_for_organization(uow.session, job.organization_id, settings, None)
                   if may_exist else None)
    deleted = None
    if may_exist and account is not None:
        client = clients.for_account(account)
        try:
            if doc_type == "credit_note":
                client.delete_credit_note(reference)
            else:
                client.delete_bill(reference)
            deleted = f"deleted unvalidated document {reference} at Factus"
        except NotFoundError:
            deleted = f"no document {reference} at Factus"
        except ConflictError:
            with UnitOfWork(session_factory) as uow:
                bring_forward(uow.session, [key])
                job_repo.add_event(uow.session, key, "cancel_refused", code="409",
                                   message=f"cancel by {actor} refused: document {reference} "
                                   "is validated at Factus; reconciling")
                uow.commit()
            raise JobError(f"document {reference} was validated by DIAN meanwhile; the job will "
                           "record it; issue a credit note to reverse it",
                           reason="cannot_cancel_accepted") from None
    with UnitOfWork(session_factory) as uow:
        job = prepare_cancel(uow.session, key)
        mark_cancelled(uow.session, job, actor=actor, deleted_at_factus=deleted,
                       document_gone=deleted is not None)
        uow.commit()
    return f"job {key} cancelled" + (f"; {deleted}" if deleted else "")


# ------------------------------------------------------------------------------------------
# Numbering ranges in Factus v2: what DIAN associated, and creating a range from it
# ------------------------------------------------------------------------------------------

#: Range document codes of ``POST /v2/numbering-ranges`` (v2 ``tablas-de-referencia``, "Códigos
#: de tipos de documento para los rangos de numeración"): 21 invoice, 22 credit note.
INVOICE_RANGE_DOCUMENT, CREDIT_NOTE_RANGE_DOCUMENT = "21", "22"


class RangeRequestError(EinvoiceError):
    """``einvoice ranges create`` was asked something it cannot do (no Factus call made)."""

    reason = "bad_range_request"


@dataclass
class CreatedRange:
    """What ``einvoice ranges create`` did.

    Attributes:
        organization_id: whose account the range was created on.
        account: the account's user (never a secret).
        numbering_range: the range Factus created (its ``id`` goes into documents'
            ``numbering_range_id``).
        synced: ``invoice_sequences`` rows upserted by the range sync that followed.
        warnings: the sync's warnings (a range running out or expiring).
    """

    organization_id: int
    account: str
    numbering_range: Any
    synced: int
    warnings: list[str]


def _organization_client(session_factory: Any, clients: Any, settings: Any,
                         organization_id: int) -> tuple[Any, Any]:
    """(resolved account, its Factus client) of an organization. Raises ``ConfigError``."""
    from einvoice.crypto import SecretBox  # noqa: PLC0415
    from einvoice.services.accounts import resolve_account  # noqa: PLC0415

    box = SecretBox.from_settings(settings) if settings.einvoice_secret_key else None
    with UnitOfWork(session_factory) as uow:
        resolved = resolve_account(uow.session, organization_id, settings, box)
    return resolved, clients.for_account(resolved.account)


def dian_ranges(session_factory: Any, clients: Any, settings: Any,
                organization_id: int) -> tuple[str, list[Any]]:
    """The numbering ranges DIAN has associated with the organization's software
    (``GET /v2/numbering-ranges/dian``, v2 ``rangos-asociados-al-software``). Factus uses none of
    them until it is created (:func:`create_range`).

    Returns:
        (the account's user, the ranges as :class:`einvoice.factus.schemas.DianNumberingRange`).
    Raises:
        ConfigError: the organization has no usable account.
        einvoice.factus.errors.ApiVersionNotEnabled: the account has no v2 (a v1 account's
            ranges are Factus's own: ``einvoice sync ranges``). FactusError otherwise.
    """
    resolved, client = _organization_client(session_factory, clients, settings, organization_id)
    return resolved.account.username, list(client.dian_numbering_ranges())


def create_range(session_factory: Any, clients: Any, settings: Any, organization_id: int, *,
                 today: Any, from_dian: str | None = None, credit_note: bool = False,
                 prefix: str | None = None, current: int | None = None,
                 actor: str = "operator") -> CreatedRange:
    """Create a numbering range at Factus (``POST /v2/numbering-ranges``, v2 ``crear-rango``)
    and sync the account's ranges into ``invoice_sequences``.

    Factus does not pick up a range the company associated at DIAN by itself, and credit notes
    need a range of their own (without resolution). Recorded as a ``numbering_range_created``
    account event (``factus_account_events``) and a log line; there is no job.

    Args:
        from_dian: the resolution number of a range :func:`dian_ranges` lists (``prefix`` picks
            one when several share it): created as an invoice range with its prefix and
            resolution; ``current`` defaults to its first number.
        credit_note: create a credit-note range instead (document 22, no resolution): ``prefix``
            (e.g. ``NC``) is required, ``current`` defaults to 1.
        today: the Bogotá date for the sync's expiry warnings.
        actor: who asked (recorded).
    Returns:
        :class:`CreatedRange`.
    Raises:
        RangeRequestError: neither or both of ``from_dian`` and ``credit_note``, no prefix for
            a credit-note range, an unknown or ambiguous DIAN range.
        ConfigError: no usable account. FactusError: Factus refused the range
            (``PayloadValidationError``: e.g. a prefix already registered) or the account has no
            v2 (``ApiVersionNotEnabled``).
    """
    from einvoice.db import accounts as account_repo  # noqa: PLC0415
    from einvoice.services import sync  # noqa: PLC0415

    if bool(from_dian) == bool(credit_note):
        raise RangeRequestError("give either --from-dian RESOLUTION or --credit-note --prefix P")
    resolved, client = _organization_client(session_factory, clients, settings, organization_id)
    if from_dian:
        candidates = [r for r in client.dian_numbering_ranges()
                      if (r.resolution_number or "") == from_dian.strip()
                      and (prefix is None or (r.prefix or "") == prefix)]
        if len(candidates) != 1:
            listed = ", ".join(f"{r.prefix}" for r in candidates) or "none"
            raise RangeRequestError(
                f"DIAN ranges of resolution {from_dian}{f' and prefix {prefix}' if prefix else ''}"
                f": {listed}; `einvoice ranges dian` lists them (give --prefix when several "
                "share a resolution)")
        created = client.create_numbering_range(from_dian=candidates[0], current=current)
        what = f"invoice range {created.prefix} from DIAN resolution {from_dian}"
    else:
        if not prefix:
            raise RangeRequestError("a credit-note range needs --prefix (e.g. NC)")
        created = client.create_numbering_range(document=CREDIT_NOTE_RANGE_DOCUMENT,
                                                prefix=prefix, current=current or 1)
        what = f"credit-note range {created.prefix}"
    message = (f"{actor} created {what} at Factus (id {created.id}, numbers {created.from_}-"
               f"{created.to}, next {created.current}) on account {resolved.account.username}")
    log.info("organization %s: %s", organization_id, message)
    with UnitOfWork(session_factory) as uow:
        account_repo.add_event(
            uow.session, resolved.account.token_key, "numbering_range_created",
            organization_id=organization_id, code=str(created.id), message=message,
            metadata={"actor": actor, "factus_numbering_range_id": created.id,
                      "document": created.document, "prefix": created.prefix,
                      "resolution_number": created.resolution_number, "from": created.from_,
                      "to": created.to, "current": created.current})
        uow.commit()
    report = sync.sync_ranges(session_factory, clients, settings, today)
    return CreatedRange(organization_id=organization_id, account=resolved.account.username,
                        numbering_range=created,
                        synced=report.written.get("invoice_sequences", 0),
                        warnings=list(report.warnings))
