"""Step 1 of a submission: claim the job, build its payload, and fence the lease.

:func:`claim_job` runs one transaction: the compare-and-set claim of the job (``pending`` or
``sent`` to ``processing`` with a lease), the ERP reads that build and validate its payload (a
bad invoice ends ``rejected`` here, with no HTTP call), and one statement that stores the
``request_payload``, sets ``outcome_unknown`` before Factus is called and appends the events
(:class:`~einvoice.services.job_change.JobChange`). What the later steps need is a
:class:`Claimed`.

The lease fences the POST itself: :func:`confirm_lease` checks in the database, right before a
validate request leaves, that this worker still holds the attempt (and extends the lease);
one attempt's waits end by :func:`attempt_budget_seconds`, and a POST within
:func:`unfenced_seconds` of the claim skips that check. A job whose Factus account has a
document pending at DIAN waits behind it (:func:`wait_behind`) instead of calling.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from einvoice.db import invoices as invoice_repo
from einvoice.db import jobs as job_repo
from einvoice.db.uow import UnitOfWork
from einvoice.domain.errors import PayloadError
from einvoice.domain.jobs import (
    ACTIVE_STATUSES,
    Decision,
    JobState,
    JobStatus,
    Outcome,
    StepOutcome,
    transition,
)
from einvoice.domain.payload import build_document
from einvoice.errors import ConfigError, EinvoiceError
from einvoice.factus import v1_body, v2_body
from einvoice.factus.tokens import ApiVersion, FactusAccount, api_version
from einvoice.services.accounts import CredentialsUnreadableError, ResolvedAccount
from einvoice.services.job_change import JobChange
from einvoice.services.runner import WorkerContext, is_infrastructure_error, retry_policy
from einvoice.settings import Settings

log = logging.getLogger(__name__)
BOGOTA = ZoneInfo("America/Bogota")


@dataclass
class Claimed:
    """A job this worker claimed, with what its call to Factus needs (step 1's result).

    Attributes:
        job_id, organization_id, invoice_id, document_type (``invoice`` or ``credit_note``),
        reference_code: the job's row (``electronic_invoicing_jobs``).
        attempt: the job's ``attempt_count`` as claimed (already incremented); with the
            worker's id it is the lease every later write is guarded by.
        max_attempts: the job's attempt limit.
        payload: the validate body to send (the stored one on a re-send, FACTUS_API.md
            Decision 3), in ``account.api_version``'s shape.
        account: the Factus account (and API version) the job is sent through.
        reconcile_first: the previous attempt's outcome is unknown: look the reference code
            up before sending anything.
    """

    job_id: uuid.UUID
    organization_id: int
    attempt: int
    max_attempts: int
    document_type: str
    reference_code: str
    invoice_id: uuid.UUID
    payload: dict[str, Any]
    account: FactusAccount
    reconcile_first: bool
    # How the account's API version was chosen (``auto`` may switch it on Factus's word).
    resolved: ResolvedAccount | None = None
    # The version, and the body, of the attempt that may have created the document: a reconcile
    # lookup goes through that version and compares with that body (the account may have moved
    # to another version since; see _lookup_basis).
    lookup_version: ApiVersion = "v1"
    lookup_payload: dict[str, Any] | None = None
    lookup_payload_version: ApiVersion = "v1"
    # Attempts are exhausted but the last one may have reached Factus: look up, never send.
    reconcile_only: bool = False
    # How many times DIAN already answered "pending" for this document (re-checks back off).
    dian_rechecks: int = 0
    # Its own document is pending at DIAN (a re-check): Factus takes its re-send while the
    # account is blocked, so it never waits for other jobs' pending documents.
    own_pending: bool = False
    # Seconds since DIAN's first "pending" answer for this document (0 when none yet).
    pending_seconds: float = 0.0


def claim_job(ctx: WorkerContext, job_id: uuid.UUID, worker: str) -> Claimed | str:
    """Claim the job and build its payload (step 1 of a submission).

    One transaction: the compare-and-set claim, the ERP reads of the payload, then one statement
    that updates the job and inserts its events (:class:`JobChange`).

    Args:
        ctx: the process's resources.
        job_id: ``electronic_invoicing_jobs.id``.
        worker: this thread's ``leased_by`` value
            (:func:`einvoice.services.runner.thread_worker_id`).
    Returns:
        A :class:`Claimed` to call Factus with, or what the claim decided instead: ``not_due``
        (already claimed, final, not due or unknown), ``waiting`` (behind an invoice in
        flight, a pending document of the account, or unreadable credentials; no attempt
        counted), ``rejected`` (the payload breaks a rule; no HTTP call) or ``failed``
        (attempts exhausted, or no Factus account).
    Raises:
        Whatever the database or the payload build raises unexpectedly (the caller ends the job
        ``internal_error``, or retries on an infrastructure error); nothing was written then.
    """
    with UnitOfWork(ctx.session_factory) as uow:
        session = uow.session
        job = job_repo.claim(session, job_id, lease_seconds=ctx.settings.einvoice_lease_seconds,
                             worker=worker)
        if job is None:
            return "not_due"  # already claimed, final, not due, or unknown: nothing to do
        # ``sent``: its document is pending at DIAN (a re-check, also after a retry of one,
        # see record_outcome). A ``pending`` row with error_code ``dian_slow`` is a re-check
        # whose lease expired (the sweeper puts jobs back ``pending`` and keeps the error).
        previous = (JobStatus.SENT if job.previous_status == JobStatus.SENT
                    or job.error_code == "dian_slow" else JobStatus.PENDING)
        change = JobChange(job.attempt_count)
        claimed = transition(JobState(previous, job.attempt_count), StepOutcome(Outcome.CLAIMED),
                             retry_policy(ctx.settings, job.max_attempts), ctx.rng)
        change.event(claimed.event_type, None, f"claimed by {worker}",
                     {"attempt": job.attempt_count, "from": previous, "to": claimed.status,
                      "worker": worker})
        result = _claim_step(ctx, session, job, previous, change)
        change.apply(session, job.id)
        uow.commit()
        return result


def _claim_step(ctx: WorkerContext, session: Session, job: Any, previous: str,
                change: JobChange) -> Claimed | str:
    """Decide what the claimed ``job`` (the row :func:`job_repo.claim` returned) does next;
    record it in ``change`` (not yet written)."""
    state = JobState(JobStatus.PROCESSING, job.attempt_count)
    policy = retry_policy(ctx.settings, job.max_attempts)

    def decide(kind: Outcome, code: str | None = None, wait: float | None = None) -> Decision:
        return transition(state, StepOutcome(kind, code=code, wait=wait), policy, ctx.rng)

    reconcile_only = job.attempt_count > job.max_attempts and bool(job.outcome_unknown)
    if job.attempt_count > job.max_attempts and not reconcile_only:
        decision = decide(Outcome.ATTEMPTS_EXHAUSTED)
        change.decide(decision, message=f"gave up after {job.max_attempts} attempts; last "
                      f"error: {job.error_code or 'none'}: {job.error_message or ''}".strip())
        return decision.status
    # The version of the stored body (jobs stored before versions were recorded spoke v1).
    stored_version = api_version(job.factus_api_version or "v1")
    try:
        resolved = ctx.resolved_for(session, job.organization_id)
        account = resolved.account
        version = account.api_version
        # A re-send after an unknown outcome, or a DIAN-slow re-check, must carry the very
        # payload of the first send (FACTUS_API.md Decision 3), even if the ERP row changed
        # since; a body of another API version cannot be sent, so it is built again (the
        # reference code, which is what Factus deduplicates on, stays).
        resend_same = ((bool(job.outcome_unknown) or previous == JobStatus.SENT)
                       and bool(job.request_payload) and stored_version == version)
        payload = (dict(job.request_payload) if resend_same and job.request_payload
                   else _build_payload(ctx, session, job, version))
    except PayloadError as exc:
        decision = decide(Outcome.REJECTED, exc.reason)
        change.decide(decision, message=exc.message,
                      metadata={"field": exc.field, "value": _jsonable(exc.value)})
        return decision.status
    except _WaitForInvoice as wait:
        change.decide(decide(Outcome.WAITING, "waiting_for_invoice", wait.delay),
                      message=wait.message)
        return "waiting"
    except CredentialsUnreadableError as exc:
        # A key problem of the deployment, not of the job: it waits (no attempt counted)
        # until a key that opens the credentials is configured.
        change.decide(decide(Outcome.WAITING, "credentials_unreadable",
                             float(ctx.settings.einvoice_redispatch_seconds)), message=exc.message)
        return "waiting"
    except ConfigError as exc:
        decision = decide(Outcome.FAILED, "no_factus_account")
        change.decide(decision, message=exc.message)
        return decision.status
    reconcile_first = bool(job.outcome_unknown)
    lookup_version, body_version, lookup_payload = _lookup_basis(resolved, job, stored_version,
                                                                 payload)
    blocker = job_repo.pending_blocker(session, account=account.username,
                                       environment=account.environment,
                                       document_type=job.document_type, exclude=job.id)
    if blocker is not None and not reconcile_first and previous != JobStatus.SENT:
        # Factus would answer 409 until that document is settled: wait for its re-check
        # instead of calling (no request spent, no attempt counted). A job that is itself
        # pending at DIAN never waits: its re-check re-sends its own reference, which Factus
        # accepts while blocked; two such jobs waiting for each other would never move.
        change.decide(decide(Outcome.WAITING, "account_blocked", wait_behind(ctx, blocker)),
                      message=f"job {blocker.id} has a document pending at DIAN on this "
                      "account; waiting for it")
        return "waiting"
    change.values.update(request_payload=payload, factus_environment=account.environment,
                         factus_account=account.username, outcome_unknown=True,
                         factus_api_version=version, updated_at=job_repo.NOW)
    if job.factus_api_version != version:
        how = ("configured" if not resolved.is_auto else
               f"auto, stored {resolved.detected}" if resolved.detected else
               "auto, none stored yet: v1 until Factus refuses it")
        change.event("api_version", version, f"Factus API {version} ({how})",
                     {"from": job.factus_api_version, "to": version,
                      "configured": resolved.configured, "detected": resolved.detected,
                      "account": account.username})
    rechecks, pending_seconds = (job_repo.dian_pending_history(session, job.id)
                                 if previous == JobStatus.SENT else (0, 0.0))
    return Claimed(
        job_id=job.id, organization_id=job.organization_id, attempt=job.attempt_count,
        max_attempts=job.max_attempts, document_type=job.document_type,
        reference_code=job.reference_code, invoice_id=job.invoice_id, payload=payload,
        account=account, resolved=resolved, lookup_version=lookup_version,
        lookup_payload=lookup_payload, lookup_payload_version=body_version,
        reconcile_first=reconcile_first, reconcile_only=reconcile_only,
        dian_rechecks=rechecks, own_pending=previous == JobStatus.SENT,
        pending_seconds=pending_seconds,
    )


def _lookup_basis(resolved: ResolvedAccount, job: Any, stored_version: ApiVersion,
                  payload: dict[str, Any]) -> tuple[ApiVersion, ApiVersion, dict[str, Any]]:
    """(version asked, version of the body, body): what a reconcile lookup of the claimed
    ``job`` goes through, and the body it compares a found document with.

    The version of the attempt that may have created the document, with that attempt's stored
    body, when the account has moved to another version since; else the version and ``payload``
    of this attempt. One exception: an ``auto`` account stored as v2 because Factus refused it
    v1 cannot be asked through v1 (and a v1 attempt refused with that 403 created nothing), so
    it is asked through v2, where its documents are listed too.
    """
    version = resolved.account.api_version
    if not job.outcome_unknown or not job.request_payload or stored_version == version:
        return version, version, payload
    refused_v1 = resolved.is_auto and resolved.detected == "v2" and stored_version == "v1"
    return (version if refused_v1 else stored_version), stored_version, dict(job.request_payload)


def wait_behind(ctx: WorkerContext, blocker: Any) -> float:
    """Seconds a job waits behind ``blocker`` (a :func:`job_repo.pending_blocker` row): until its
    re-check is due, then spread over about one re-check interval (it needs DIAN's answer).

    Used by the claim, the check just before a POST and the 409 handling
    (:mod:`einvoice.services.conflicts`); the spread is the retry policy's
    (:meth:`einvoice.domain.jobs.RetryPolicy.behind`, jitter from ``ctx.rng``).
    """
    return retry_policy(ctx.settings).behind(float(blocker.wait_seconds), ctx.rng)


class _WaitForInvoice(EinvoiceError):
    """A credit note whose invoice is not validated yet: try again later."""

    reason = "waiting_for_invoice"

    def __init__(self, message: str, delay: float) -> None:
        super().__init__(message)
        self.delay = delay


def _build_payload(ctx: WorkerContext, session: Session, job: Any,
                   api_version: str) -> dict[str, Any]:
    """The validate body of ``job``'s document for Factus API ``api_version`` ("v1" or "v2").

    Reads the ERP rows (:func:`invoice_repo.load_invoice`), checks them into one
    version-neutral document (:func:`einvoice.domain.payload.build_document`, with the version's
    rules) and maps it with ``einvoice.factus.v1_body`` or ``v2_body``.

    Raises:
        PayloadError: the first rule the document breaks (the job ends ``rejected``), or
            ``unsupported_document_type``.
        _WaitForInvoice: a credit note whose invoice is still in flight.
    """
    today = datetime.now(BOGOTA).date()
    if job.document_type not in ("invoice", "credit_note"):
        raise PayloadError(
            "unsupported_document_type", field="electronic_invoicing_jobs.document_type",
            value=job.document_type, detail="only invoice and credit_note are sent to Factus")
    mapper = v2_body if api_version == "v2" else v1_body
    invoice = invoice_repo.load_invoice(session, job.invoice_id, job.document_type,
                                        organization_id=job.organization_id)
    credit_note = job.document_type == "credit_note"
    if credit_note and invoice.related_invoice_id and (
            invoice.related_bill_number is None if api_version == "v2"
            else invoice.related_bill_id is None):
        _check_related_invoice(session, uuid.UUID(invoice.related_invoice_id), ctx)
    document = build_document(
        invoice, reference_code=job.reference_code, today=today,
        known_municipality_ids=ctx.municipalities(session),
        rules=v2_body.V2_RULES if api_version == "v2" else v1_body.V1_RULES,
        known_units=ctx.known_units(session),
    )
    body: dict[str, Any] = (mapper.credit_note_body(document) if credit_note
                            else mapper.bill_body(document))
    return body


def _check_related_invoice(session: Session, related_id: uuid.UUID, ctx: WorkerContext) -> None:
    """A credit note waits while its invoice's job is in flight; is rejected if it cannot come."""
    found = job_repo.invoice_job_statuses(session, related_id)
    if any(status in ACTIVE_STATUSES for status in found):
        raise _WaitForInvoice(
            f"invoice {related_id} is not validated yet; the credit note waits for it",
            delay=max(ctx.settings.einvoice_dian_slow_recheck_seconds, 5.0),
        )
    statuses = sorted(set(found)) or ["no job"]
    raise PayloadError("related_invoice_not_validated", field="invoice_sales.related_invoice_id",
                       value=str(related_id),
                       detail=f"the credited invoice is not validated ({', '.join(statuses)})")


def _jsonable(value: object) -> object:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


# ------------------------------------------------------------------------------------------
# The lease fence
# ------------------------------------------------------------------------------------------


class LeaseLost(EinvoiceError):
    """Raised by the fence before a POST: this worker no longer holds the job (nothing sent)."""

    reason = "lease_lost"


class LeaseUnconfirmed(EinvoiceError):
    """Raised by the fence before a POST: the database could not confirm the lease (nothing
    sent)."""

    reason = "database_unavailable"


def attempt_budget_seconds(settings: Settings) -> float:
    """How long one attempt's waits may last, from just before its claim, in seconds.

    The lease (``EINVOICE_LEASE_SECONDS``) minus one whole validate call (connect + validate
    timeouts), but at least half the lease: 85 s of a 120 s lease by default. Waits for the
    token lock, a rate-limit slot or a ``Retry-After`` that would end later are not made (the
    job is rescheduled instead), so a live worker's claim does not run out while it waits.
    """
    lease = float(settings.einvoice_lease_seconds)
    call = settings.factus_connect_timeout + settings.factus_validate_timeout
    return max(lease - call, lease / 2)


def unfenced_seconds(settings: Settings) -> float:
    """How long after a claim starts a POST may leave without re-confirming the lease, in s.

    The claim's lease runs ``EINVOICE_LEASE_SECONDS`` from a database instant later than this
    worker's start of the claim, and nobody takes a job before its lease expires (the sweeper)
    or before it was claimed a minute ago (the 409 take-over), so a POST sent within a quarter
    of the lease (at most 30 s) of the claim's start cannot race another holder: the usual
    POST, right after its claim, skips the fence's extra transaction. Later ones confirm it.
    """
    return min(float(settings.einvoice_lease_seconds) / 4, 30.0)


def confirm_lease(ctx: WorkerContext, claimed: Claimed, worker: str) -> None:
    """Confirm in its own short transaction that ``worker`` still holds the claimed attempt,
    extending the lease by ``EINVOICE_LEASE_SECONDS`` (:func:`job_repo.renew_lease`).

    Raises:
        LeaseLost: another worker holds the job now, or it was released.
        LeaseUnconfirmed: PostgreSQL could not be reached.
    """
    try:
        with UnitOfWork(ctx.session_factory) as uow:
            held = job_repo.renew_lease(uow.session, claimed.job_id, worker=worker,
                                        attempt=claimed.attempt,
                                        lease_seconds=ctx.settings.einvoice_lease_seconds)
            uow.commit()
    except (OperationalError, InterfaceError, DBAPIError) as exc:
        if not is_infrastructure_error(exc):
            raise
        raise LeaseUnconfirmed(f"the lease could not be confirmed before the POST "
                               f"({type(exc).__name__}); nothing was sent") from exc
    if not held:
        log.warning("job %s attempt %d: lease lost before the POST; nothing sent",
                    claimed.job_id, claimed.attempt)
        raise LeaseLost(f"job {claimed.job_id} attempt {claimed.attempt}: {worker} no longer "
                        "holds the job (its lease expired and it was released or claimed "
                        "again); nothing was sent")
