"""Submit one job to Factus, exactly once, and record the outcome.

The flow of :func:`submit_job`, in three short steps with no transaction open during HTTP
(STYLE.md habit 4; saleor's "attempt row written before the call, updated after"):

1. **Claim** (one transaction): compare-and-set the job to ``processing`` with a lease; build and
   validate the payload from the ERP's rows (a bad invoice ends ``rejected`` here, with no HTTP
   call); store ``request_payload``; set ``outcome_unknown`` before calling Factus.
2. **Call Factus** (no transaction): if the previous attempt's outcome is unknown (a timeout after
   sending, a killed worker, an expired lease), first look the reference code up at Factus and
   adopt what is there (FACTUS_API.md Decision 3); otherwise, or when nothing is there, validate.
3. **Record** (one transaction, retried while PostgreSQL restarts): the outcome per Decision 4:
   accepted, DIAN slow (``sent``), rejected (payload or DIAN; a stored rejected document is
   deleted so it does not block the account), retry with backoff, or ``failed``.

Outcomes are written only while this worker still holds the lease (same ``leased_by`` and
attempt), so a worker that lost its lease never overwrites a newer attempt. The lease also
fences the POST itself: right before each validate request leaves, the worker confirms in the
database that it still holds the job (and extends the lease); if it lost it, nothing is sent
(``lease_lost``). One attempt's waits (token lock, rate-limit slot, ``Retry-After``) end by a
deadline well inside the lease (:func:`attempt_budget_seconds`).

What Factus answers is checked, not trusted: a 201 "validated" without a valid CUFE/CUDE is an
unknown outcome and the document is looked up by reference code at once (``invalid_cufe``); a
document DIAN keeps pending longer than ``EINVOICE_DIAN_PENDING_TIMEOUT_SECONDS`` ends the job
``failed`` (``dian_timeout``, outcome unknown kept).

No row can jam the queue: any unexpected exception while claiming, building, calling or
recording one job ends that job ``failed`` (``internal_error``, the exception in its event) and
leaves the other jobs alone. Only infrastructure errors
(:data:`~einvoice.services.runner.INFRASTRUCTURE_ERRORS`: PostgreSQL or Redis unreachable)
propagate, so that the task retries. The claim, lease and record plumbing shared with the
follow-ups is :mod:`einvoice.services.runner`.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import redis
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session

from einvoice.db import invoices as invoice_repo
from einvoice.db import jobs as job_repo
from einvoice.db.uow import UnitOfWork
from einvoice.domain.errors import PayloadError
from einvoice.domain.jobs import (
    ACTIVE_STATUSES,
    Decision,
    EventType,
    JobState,
    JobStatus,
    Outcome,
    StepOutcome,
    is_valid_unique_code,
    transition,
)
from einvoice.domain.payload import build_document
from einvoice.errors import ConfigError, EinvoiceError
from einvoice.factus import deadline, v1_body, v2_body
from einvoice.factus.client import FactusClient
from einvoice.factus.errors import (
    ApiVersionNotEnabled,
    AuthenticationError,
    DianRejectionError,
    FactusError,
    ForbiddenError,
    NotFoundError,
    PayloadValidationError,
    PendingDocumentConflict,
    RateLimitedError,
)
from einvoice.factus.schemas import BillResult, CreditNoteResult
from einvoice.factus.tokens import ApiVersion, FactusAccount, api_version
from einvoice.services.accounts import (
    CredentialsUnreadableError,
    ResolvedAccount,
    remember_version,
)
from einvoice.services.documents import schedule_archive
from einvoice.services.runner import (
    WorkerContext,
    is_infrastructure_error,
    record_retrying,
    retry_policy,
    thread_worker_id,
)
from einvoice.settings import Settings

log = logging.getLogger(__name__)
BOGOTA = ZoneInfo("America/Bogota")

Document = BillResult | CreditNoteResult

@dataclass
class _Claimed:
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
    # to another version since; see _claim_step).
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


@dataclass
class _Outcome:
    """What step 2 learned; step 3 writes it."""

    # accepted | dian_slow | rejected | retry | failed | wait | lease_lost | switch
    kind: str
    code: str | None = None
    message: str | None = None
    document: Document | None = None
    delay: float | None = None
    count_attempt: bool = True
    outcome_unknown: bool = False
    latency_ms: int | None = None
    http_status: int | None = None
    events: list[tuple[str, str | None, str | None, dict[str, Any] | None]] = field(default_factory=list)
    # ``switch``: the API version the account moves to.
    switch_to: str | None = None
    # ``retry``: which retry it is (the domain picks its delay from it, :func:`transition`);
    # ``delay`` is then the wait the cause imposes (``held``) and ``spread`` the jitter width
    # of a ``retry_soon``.
    step: Outcome = Outcome.RETRYABLE
    spread: float = 1.0


# ------------------------------------------------------------------------------------------
# Step 1: claim and build
# ------------------------------------------------------------------------------------------


def _claim(ctx: WorkerContext, job_id: uuid.UUID, worker: str) -> _Claimed | str:
    """Claim the job and build its payload; return a _Claimed, or a short reason string.

    One transaction: the compare-and-set claim, the ERP reads of the payload, then one statement
    that updates the job and inserts its events (:class:`_Change`).
    """
    with UnitOfWork(ctx.session_factory) as uow:
        session = uow.session
        job = job_repo.claim(session, job_id, lease_seconds=ctx.settings.einvoice_lease_seconds,
                             worker=worker)
        if job is None:
            return "not_due"  # already claimed, final, not due, or unknown: nothing to do
        # ``sent``: its document is pending at DIAN (a re-check, also after a retry of one,
        # see _record). A ``pending`` row with error_code ``dian_slow`` is a re-check whose
        # lease expired (the sweeper puts jobs back ``pending`` and keeps the error).
        previous = (JobStatus.SENT if job.previous_status == JobStatus.SENT
                    or job.error_code == "dian_slow" else JobStatus.PENDING)
        change = _Change(job.attempt_count)
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
                change: _Change) -> _Claimed | str:
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
        change.decide(decide(Outcome.WAITING, "account_blocked", _wait_behind(ctx, blocker)),
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
    return _Claimed(
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


def _wait_behind(ctx: WorkerContext, blocker: Any) -> float:
    """Seconds a job waits behind ``blocker`` (a :func:`job_repo.pending_blocker` row): until its
    re-check is due, then spread over about one re-check interval (it needs DIAN's answer)."""
    return retry_policy(ctx.settings).behind(float(blocker.wait_seconds), ctx.rng)


def _blocker_of(ctx: WorkerContext, claimed: _Claimed) -> Any:
    """Our ``sent`` job on the claimed job's Factus account, if any (a short read).

    A database error here (PostgreSQL restarting) counts as "none known": the check only saves
    a request, and a 409 that it would have avoided is handled like any other.
    """
    try:
        with ctx.session_factory() as session:
            return job_repo.pending_blocker(
                session, account=claimed.account.username,
                environment=claimed.account.environment,
                document_type=claimed.document_type, exclude=claimed.job_id)
    except (OperationalError, DBAPIError) as exc:
        log.warning("job %s: pre-send check for a pending document failed (%s); sending",
                    claimed.job_id, type(exc).__name__)
        return None


class _AccountBlocked(EinvoiceError):
    """Raised by the pre-send check: another job's document is pending at DIAN on the account."""

    reason = "account_blocked"

    def __init__(self, blocker: Any) -> None:
        super().__init__(f"job {blocker.id} has a document pending at DIAN on this account; "
                         "waiting for it (checked just before the POST; nothing was sent)")
        self.blocker = blocker


class _LeaseLost(EinvoiceError):
    """Raised by the fence before a POST: this worker no longer holds the job (nothing sent)."""

    reason = "lease_lost"


class _LeaseUnconfirmed(EinvoiceError):
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


def _confirm_lease(ctx: WorkerContext, claimed: _Claimed, worker: str) -> None:
    """Confirm in its own short transaction that ``worker`` still holds the claimed attempt,
    extending the lease by ``EINVOICE_LEASE_SECONDS`` (:func:`job_repo.renew_lease`).

    Raises:
        _LeaseLost: another worker holds the job now, or it was released.
        _LeaseUnconfirmed: PostgreSQL could not be reached.
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
        raise _LeaseUnconfirmed(f"the lease could not be confirmed before the POST "
                                f"({type(exc).__name__}); nothing was sent") from exc
    if not held:
        log.warning("job %s attempt %d: lease lost before the POST; nothing sent",
                    claimed.job_id, claimed.attempt)
        raise _LeaseLost(f"job {claimed.job_id} attempt {claimed.attempt}: {worker} no longer "
                         "holds the job (its lease expired and it was released or claimed "
                         "again); nothing was sent")


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
# Step 2: talk to Factus
# ------------------------------------------------------------------------------------------


def _is_credit_note(claimed: _Claimed) -> bool:
    return claimed.document_type == "credit_note"


def _lookup(client: FactusClient, claimed: _Claimed) -> Document | None:
    if _is_credit_note(claimed):
        return client.find_credit_note_by_reference(claimed.reference_code)
    return client.find_bill_by_reference(claimed.reference_code)


def _validate(client: FactusClient, claimed: _Claimed, before_send: Callable[[], None] | None,
              fence: Callable[[], None]) -> Document:
    if _is_credit_note(claimed):
        return client.validate_credit_note(claimed.payload, before_send=before_send, fence=fence)
    return client.validate_bill(claimed.payload, before_send=before_send, fence=fence)


def _delete(client: FactusClient, claimed: _Claimed, reference_code: str) -> None:
    if _is_credit_note(claimed):
        client.delete_credit_note(reference_code)
    else:
        client.delete_bill(reference_code)


def _payload_total(payload: dict[str, Any], api_version: str) -> Decimal:
    """The document total (COP) that a wire body of ``api_version`` implies (the version's
    ``payload_total``), for comparing with a document found at Factus."""
    total: Decimal = (v2_body if api_version == "v2" else v1_body).payload_total(payload)
    return total


def _reconcile_lookup(ctx: WorkerContext, client: FactusClient, claimed: _Claimed) -> Document | None:
    """Look the reference code up through the version the document may have been created with
    (:func:`_lookup_basis`); if the account no longer speaks that version, through the one it
    speaks now (documents belong to the account, not to a version)."""
    if claimed.lookup_version == claimed.account.api_version:
        return _lookup(client, claimed)
    older = ctx.clients.for_account(replace(claimed.account, api_version=claimed.lookup_version))
    try:
        return _lookup(older, claimed)
    except ApiVersionNotEnabled:
        return _lookup(client, claimed)


def _matches_payload(document: Document, claimed: _Claimed, *,
                     reconciling: bool = False) -> tuple[bool, str]:
    """Does a document found at Factus carry this job's totals and customer? (Decision 3).

    ``reconciling``: compare with the body of the attempt that may have created it
    (``claimed.lookup_payload``, in its own API version) rather than this attempt's.
    """
    payload, version = claimed.payload, claimed.account.api_version
    if reconciling and claimed.lookup_payload is not None:
        payload, version = claimed.lookup_payload, claimed.lookup_payload_version
    expected = _payload_total(payload, version)
    found = document.totals.total
    if found is not None and abs(Decimal(found) - expected) > Decimal("0.01"):
        return False, f"total at Factus {found} differs from the payload's {expected}"
    customer = payload.get("customer") or {}
    raw_customer = (document.raw or {}).get("customer") or {}
    ident_found = str(raw_customer.get("identification") or "").strip()
    ident_expected = str(customer.get("identification") or "").strip()
    if ident_found and ident_expected and ident_found != ident_expected:
        return False, f"customer at Factus {ident_found} differs from the payload's {ident_expected}"
    return True, "totals and customer match"


def _document_outcome(document: Document, claimed: _Claimed, latency_ms: int,
                      client: FactusClient, ctx: WorkerContext) -> _Outcome:
    """Turn a validate answer (or a document found by reference) into an outcome."""
    if document.is_validated:
        code = document.cude if isinstance(document, CreditNoteResult) else document.cufe
        if not is_valid_unique_code(code):
            return _invalid_code_outcome(ctx, claimed, code, latency_ms)
        return _Outcome(JobStatus.ACCEPTED, document=document, latency_ms=latency_ms,
                        http_status=201)
    if document.is_rejected:
        rules = document.rejections
        return _rejected_by_dian(client, claimed, [r.code or "?" for r in rules],
                                 "; ".join(f"{r.code}: {r.text}" for r in rules),
                                 already_processed=any(r.code == "90" for r in rules))
    bound = ctx.settings.einvoice_dian_pending_timeout_seconds
    if claimed.pending_seconds >= bound:
        # Still pending after the bound: stop re-checking. The document may yet be validated
        # (or exist) at DIAN, so the outcome stays unknown and a retry looks it up first.
        return _Outcome(
            JobStatus.FAILED, code="dian_timeout", latency_ms=latency_ms, http_status=201,
            outcome_unknown=True,
            message=f"DIAN has kept document {document.number or claimed.reference_code} pending "
            f"for {claimed.pending_seconds / 3600:.1f} h ({claimed.dian_rechecks + 1} answers; "
            f"bound EINVOICE_DIAN_PENDING_TIMEOUT_SECONDS={bound:g} s); re-checks stopped. "
            "`einvoice jobs retry` looks the reference code up again (never a new document)")
    return _Outcome(
        "dian_slow", code="dian_slow", latency_ms=latency_ms, http_status=201,
        message="DIAN has not answered yet (status 0, no rejection); re-checking with the same "
        "reference code", count_attempt=False,
    )


def _invalid_code_outcome(ctx: WorkerContext, claimed: _Claimed, code: object,
                          latency_ms: int) -> _Outcome:
    """A "validated" answer without a valid CUFE/CUDE: the outcome is unknown, never accepted.

    Retried (counted, with backoff) with ``outcome_unknown`` set, so the next attempt looks the
    reference code up before anything else; a pass that may only look up gives up (failed,
    ``invalid_cufe``, outcome still unknown).
    """
    name = "CUDE" if _is_credit_note(claimed) else "CUFE"
    shown = code if code is None else repr(str(code)[:120])
    message = (f"Factus answered \"validated\" without a valid {name} (96 hex characters; got "
               f"{shown}); the outcome is unknown: looking the document up by reference code")
    if claimed.reconcile_only:
        return _Outcome(JobStatus.FAILED, code="invalid_cufe", latency_ms=latency_ms,
                        http_status=201, outcome_unknown=True,
                        message=f"gave up after {claimed.max_attempts} attempts: Factus still "
                        f"shows no valid {name} for this reference code (got {shown}); "
                        "an operator must check the document at Factus")
    outcome = _Outcome("retry", code="invalid_cufe", message=message, latency_ms=latency_ms,
                       http_status=201, outcome_unknown=True, step=Outcome.RETRYABLE)
    outcome.events.append(("invalid_cufe", "201", message, {"attempt": claimed.attempt}))
    return outcome


def _look_up_after_invalid_code(ctx: WorkerContext, client: FactusClient, claimed: _Claimed,
                                outcome: _Outcome) -> _Outcome:
    """After a 201 without a valid code (``outcome``, a retry): look the reference code up
    right away and adopt what Factus shows (FACTUS_API.md Decision 3), or keep ``outcome``
    (the next attempt looks up again) when the lookup fails or shows no valid code either."""
    try:
        found = _lookup(client, claimed)
    except FactusError as exc:
        outcome.events.append(("reconciled", exc.reason, f"lookup after the invalid code "
                               f"failed ({exc}); the next attempt looks it up again", None))
        return outcome
    if found is None:
        outcome.events.append(("reconciled", "absent", "no document with this reference code "
                               "at Factus yet; the next attempt looks it up again", None))
        return outcome
    ok, why = _matches_payload(found, claimed)
    if found.is_validated and not ok:
        adopted = _Outcome(JobStatus.FAILED, code="reconcile_mismatch", outcome_unknown=True,
                           latency_ms=outcome.latency_ms, http_status=outcome.http_status,
                           message=f"a validated document {found.number} with this reference "
                           f"exists at Factus but {why}; an operator must decide")
    else:
        adopted = _document_outcome(found, claimed, outcome.latency_ms or 0, client, ctx)
        if adopted.code == "invalid_cufe":
            return outcome
        adopted.events.insert(0, ("reconciled", "found", f"document {found.number} found at "
                                  f"Factus by reference code ({why})",
                                  {"number": found.number, "status": found.status}))
    adopted.events[:0] = outcome.events
    return adopted


def dian_recheck_delay(settings: Settings, rechecks: int, rng: random.Random) -> float:
    """Seconds until the next re-check of a document DIAN has not answered yet.

    ``EINVOICE_DIAN_SLOW_RECHECK_SECONDS`` (5 s) after the first "pending" answer, doubling
    with every further one up to ``EINVOICE_RETRY_CAP_SECONDS`` (300 s), ±20 % jitter. A pending
    document blocks its whole account at Factus (409, FACTUS_API.md §5.3), so the first
    re-checks come soon; a document DIAN keeps pending for long is polled at most every 5 min.

    Args:
        rechecks: "pending" answers already recorded for this document (``dian_slow`` events).
    """
    return retry_policy(settings).recheck_delay(rechecks, rng)


def _rejected_by_dian(client: FactusClient, claimed: _Claimed, codes: list[str], text: str,
                      *, already_processed: bool) -> _Outcome:
    if already_processed:
        # Rule 90: DIAN already has this document. Never delete or re-send (FACTUS_API.md §5.4).
        return _Outcome(JobStatus.FAILED, code="dian_already_processed", http_status=422,
                        message=f"DIAN rule 90 (document processed before): {text}; an operator "
                        "must reconcile with Factus support", outcome_unknown=False)
    outcome = _Outcome(JobStatus.REJECTED, code="dian_rejected:" + ",".join(codes), http_status=422,
                       message=text)
    try:
        _delete(client, claimed, claimed.reference_code)
        outcome.events.append(("document_deleted", "200", "the rejected document was deleted at "
                               "Factus so it does not block the account", None))
    except NotFoundError:
        pass
    except FactusError as exc:
        # The document stays and will block creates (409) until settled; the 409 handler of the
        # next submission finds it (ours, final) and deletes it.
        outcome.events.append(("delete_failed", exc.reason, str(exc), None))
    return outcome


def _settle_pending_conflict(ctx: WorkerContext, client: FactusClient, claimed: _Claimed,
                             exc: PendingDocumentConflict) -> _Outcome:
    """409: find the pending document; settle it if it is ours, else back off (Decision 4).

    A 409 never names the blocking document, and a re-send of this job's own pending reference
    is accepted, so the blocker is another document. When our database already knows one (a
    ``sent`` job of the same account, typically a DIAN-slow answer to a request that was in
    flight beside this one), this job waits for that one's re-check without listing Factus's
    pending documents: the list would cost a request of the account's quota and could only
    find the same job. Otherwise it lists them and settles ours.
    """
    blocker = _blocker_of(ctx, claimed)
    if blocker is not None:
        message = (f"409: job {blocker.id} has a document pending at DIAN on this account; "
                   "waiting for its re-check")
        outcome = _Outcome("retry", code="pending_document", http_status=409, message=message,
                           delay=_wait_behind(ctx, blocker), count_attempt=False,
                           step=Outcome.HELD)
        outcome.events.append(("pending_conflict", "409", message,
                               {"blocker": str(blocker.id)}))
        return outcome
    try:
        pending = (client.list_credit_notes(status=0) if _is_credit_note(claimed)
                   else client.list_bills(status=0))
    except FactusError as list_error:
        # The POST's 409 stays on the record (a ``pending_conflict`` event), or a lookup that
        # found no rate slot would leave only its own ``rate_limit_wait`` in the job's history.
        # Nothing was created, so the outcome is known.
        outcome = _retry_outcome(ctx, claimed, list_error, "pending_document")
        outcome.http_status, outcome.outcome_unknown = 409, False
        outcome.events.append(("pending_conflict", "409", "409: listing the account's pending "
                               f"documents failed ({list_error.reason}); trying again later",
                               None))
        return outcome
    settled: list[str] = []
    foreign: list[str] = []
    # 1. Whose documents are they? (a short read; no transaction stays open during HTTP)
    final_owned: list[tuple[str, uuid.UUID]] = []
    in_flight: list[tuple[str, uuid.UUID]] = []
    with ctx.session_factory() as session:
        for doc in pending:
            ref = doc.reference_code
            owner = job_repo.job_by_reference(session, ref) if ref else None
            if owner is None:
                foreign.append(f"{doc.number or '?'} ({ref or 'no reference'})")
            elif owner.status in (JobStatus.REJECTED, JobStatus.FAILED, JobStatus.CANCELLED):
                final_owned.append((ref, owner.id))  # type: ignore[arg-type]
            elif owner.id != claimed.job_id:
                in_flight.append((ref, owner.id))  # type: ignore[arg-type]
    # 2. Delete our own documents whose jobs are final (HTTP, outside any transaction).
    deleted: list[tuple[str, uuid.UUID]] = []
    for ref, owner_id in final_owned:
        try:
            _delete(client, claimed, ref)
            deleted.append((ref, owner_id))
            settled.append(f"deleted {ref} of final job {owner_id}")
        except NotFoundError:
            settled.append(f"{ref} of final job {owner_id} was already gone")
        except FactusError:
            foreign.append(f"{ref} (ours, delete failed)")
    # 3. Record it. Our own documents still pending at DIAN are marked ``sent`` (that is what
    #    Factus's list says they are) and re-checked now: their re-send releases the block,
    #    and meanwhile the account's other jobs wait for them without calling (``_claim``), so
    #    409s and settling lookups cannot eat the account's quota while the re-check starves.
    with UnitOfWork(ctx.session_factory) as uow:
        for _ref, owner_id in deleted:
            job_repo.add_event(uow.session, owner_id, "document_deleted", code="200",
                               message="deleted its unvalidated document at Factus: it "
                               f"blocked job {claimed.job_id} (409)")
        for ref, owner_id in in_flight:
            # A ``processing`` owner held by a dead worker is taken over too: waiting for its
            # lease would block the account, and its document is pending at DIAN anyway.
            if job_repo.take_over_pending_at_dian(uow.session, owner_id):
                settled.append(f"re-check of job {owner_id} ({ref}) brought forward")
            else:
                settled.append(f"job {owner_id} ({ref}) is being submitted right now")
        uow.commit()
    if settled and not foreign:
        # Spread the blocked jobs over a few seconds: the settled document needs a moment
        # (a delete, or DIAN's answer to the re-check) and they must not storm the account.
        outcome = _Outcome("retry", code="pending_document", http_status=409,
                           message="409 pending document settled: " + "; ".join(settled),
                           count_attempt=False, step=Outcome.RETRY_SOON, spread=2.0)
    else:
        outcome = _Outcome("retry", code="pending_document", http_status=409,
                           step=Outcome.FOREIGN_CONFLICT,
                           message="409: Factus holds a pending document not created by einvoice: "
                           + ", ".join(foreign or ["unknown"]) + "; backing off")
    outcome.events.append(("pending_conflict", "409", outcome.message, {"settled": settled,
                                                                        "foreign": foreign}))
    return outcome


#: The version ``auto`` moves an account to when Factus refuses it the one in use. Only v1 -> v2:
#: accounts opened today are v2-only and answer 403 on /v1 (FACTUS_API.md "API v2"); a refusal
#: of v2 is never "answered" by going back, which could flip an account refused both forever.
AUTO_SWITCH = {"v1": "v2"}


def _version_refused(claimed: _Claimed, exc: ApiVersionNotEnabled) -> _Outcome:
    """Factus answered a call of this attempt with "account not enabled for API <version>".

    An ``auto`` account on v1 moves to v2 (``switch``: stored by :func:`_record`, the job's step
    run again at once, no attempt counted). Otherwise the job fails with
    ``factus_version_not_enabled``: a configured version the account does not have is the
    operator's to fix. The refused request created nothing, so an earlier unknown outcome stays
    as it was, and nothing else.
    """
    version = claimed.account.api_version
    target = AUTO_SWITCH.get(version)
    auto = claimed.resolved is not None and claimed.resolved.is_auto
    if auto and exc.version == version and target is not None:
        return _Outcome("switch", code=exc.reason, http_status=403, count_attempt=False,
                        outcome_unknown=claimed.reconcile_first,
                        message=f"Factus refused API {version} for account "
                        f"{claimed.account.username} ({exc}); the account speaks {target} from "
                        "now on (auto) and the job is sent again through it",
                        switch_to=target)
    where = ("FACTUS_API_VERSION" if claimed.account.key == "default"
             else "factus_credentials.api_version")
    return _Outcome(JobStatus.FAILED, code=exc.reason, http_status=403,
                    outcome_unknown=claimed.reconcile_first,
                    message=f"Factus refused API {exc.version} for account "
                    f"{claimed.account.username} (403: {exc}); set {where} to the version the "
                    "account was opened on (or auto), then `einvoice jobs retry`")


def _retry_outcome(ctx: WorkerContext, claimed: _Claimed, exc: FactusError, code: str | None = None,
                   ) -> _Outcome:
    if isinstance(exc, RateLimitedError):
        return _Outcome("retry", code=exc.reason, message=str(exc), http_status=exc.status_code,
                        delay=max(exc.retry_after, 1.0), count_attempt=False,
                        outcome_unknown=False, step=Outcome.HELD)
    return _Outcome("retry", code=code or exc.reason, message=str(exc), http_status=exc.status_code,
                    step=Outcome.RETRYABLE, outcome_unknown=bool(exc.may_have_reached))


def _call_factus(ctx: WorkerContext, claimed: _Claimed, worker: str,
                 until: float | None = None, unfenced_until: float = 0.0) -> _Outcome:
    """Step 2 for the claimed job, by ``worker``; every wait of the Factus client ends by
    ``until`` (``time.monotonic()`` seconds, :mod:`einvoice.factus.deadline`); a POST leaving
    before ``unfenced_until`` (monotonic s, :func:`unfenced_seconds`) skips the lease check."""
    with deadline.attempt_deadline(until):
        return _call_factus_within_deadline(ctx, claimed, worker, unfenced_until)


def _call_factus_within_deadline(ctx: WorkerContext, claimed: _Claimed, worker: str,
                                 unfenced_until: float = 0.0) -> _Outcome:
    client = ctx.clients.for_account(claimed.account)
    events: list[tuple[str, str | None, str | None, dict[str, Any] | None]] = []
    # Set once a validate request passed the fence: from then on it may have reached Factus.
    posted = False
    own_pending = claimed.own_pending

    def still_unblocked() -> None:
        # A send that queued for its rate-limit slot looks again for a document of ours
        # pending at DIAN on the account: one may have appeared meanwhile, and Factus would
        # answer this send with a 409 (FACTUS_API.md §5.3). A job whose own document is
        # pending is never held: its re-send is what unblocks the account.
        blocker = None if own_pending else _blocker_of(ctx, claimed)
        if blocker is not None:
            raise _AccountBlocked(blocker)

    def fence() -> None:
        # Right before the request leaves: do we still hold the job? A claim whose lease ran
        # out during the waits may have been released and claimed again; its POST would then
        # race the new holder's (a second POST of the document).
        nonlocal posted
        if time.monotonic() >= unfenced_until:
            _confirm_lease(ctx, claimed, worker)
        posted = True

    try:
        if claimed.reconcile_first:
            found = _reconcile_lookup(ctx, client, claimed)
            if found is not None:
                ok, why = _matches_payload(found, claimed, reconciling=True)
                if found.is_validated and not ok:
                    return _Outcome(JobStatus.FAILED, code="reconcile_mismatch",
                                    message=f"a validated document {found.number} with this "
                                    f"reference exists at Factus but {why}; an operator must decide")
                if found.is_validated or found.is_rejected:
                    outcome = _document_outcome(found, claimed, 0, client, ctx)
                    outcome.events.insert(0, ("reconciled", "found", f"document {found.number} "
                                              f"found at Factus by reference code ({why})",
                                              {"number": found.number, "status": found.status}))
                    return outcome
                events.append(("reconciled", JobStatus.PENDING, f"document {found.number} "
                               "found pending at DIAN; re-sending with the same reference code",
                               None))
                own_pending = claimed.own_pending = True  # a re-check from now on (see _record)
            elif claimed.reconcile_only:
                return _Outcome(JobStatus.FAILED, code="attempts_exhausted",
                                message=f"gave up after {claimed.max_attempts} attempts; no "
                                "document with this reference code at Factus")
            else:
                events.append(("reconciled", "absent", "no document with this reference code at "
                               "Factus; sending", None))
        if claimed.reconcile_first:
            # It skipped the claim's wait for a pending document (its own might have been the
            # one); the lookup said it is not, so it now waits like any other job.
            still_unblocked()
        started = time.monotonic()
        document = _validate(client, claimed, still_unblocked, fence)
        latency = int((time.monotonic() - started) * 1000)
        outcome = _document_outcome(document, claimed, latency, client, ctx)
        if outcome.kind == "retry" and outcome.code == "invalid_cufe":
            outcome = _look_up_after_invalid_code(ctx, client, claimed, outcome)
    except _LeaseLost as exc:
        return _Outcome("lease_lost", code=exc.reason, message=exc.message)
    except _LeaseUnconfirmed as exc:
        # Nothing left with this request; the database will tell next time.
        outcome = _Outcome("retry", code=exc.reason, count_attempt=False, message=exc.message,
                           step=Outcome.RETRY_SOON,
                           outcome_unknown=claimed.reconcile_first or posted)
    except PayloadValidationError as exc:
        fields = "; ".join(f"{k}: {' '.join(v)}" for k, v in exc.field_errors.items())
        outcome = _Outcome(JobStatus.REJECTED, code="payload_invalid", http_status=422,
                           message=fields or str(exc))
    except DianRejectionError as exc:
        outcome = _rejected_by_dian(
            client, claimed, exc.rule_codes or ["?"],
            "; ".join(f"{r.code}: {r.text}" for r in exc.rejections) or str(exc),
            already_processed=exc.already_processed)
    except PendingDocumentConflict as exc:
        outcome = _settle_pending_conflict(ctx, client, claimed, exc)
    except redis.RedisError as exc:
        # Redis (token store, renewal locks, rate limiter) went away mid-call. Give the job
        # back now instead of leaving it ``processing`` until its lease expires (a Redis
        # restart would hold every in-flight job for the 120 s lease). Redis is only
        # used before a request goes out, but a POST may already have been answered (a
        # follow-up read failed), so once posted the outcome counts as unknown: the next
        # attempt looks the reference up before sending anything.
        outcome = _Outcome("retry", code="redis_unavailable", count_attempt=False,
                           message=f"Redis unavailable during the Factus call: {exc}",
                           step=Outcome.RETRY_SOON,
                           outcome_unknown=claimed.reconcile_first or posted)
    except _AccountBlocked as exc:
        # Nothing was sent (and a reconcile lookup, if any, found no document of ours).
        outcome = _Outcome("wait", code=exc.reason, message=exc.message,
                           delay=_wait_behind(ctx, exc.blocker), outcome_unknown=False)
    except ApiVersionNotEnabled as exc:
        outcome = _version_refused(claimed, exc)
    except ForbiddenError as exc:
        outcome = _Outcome(JobStatus.FAILED, code=exc.reason, http_status=403,
                           message=f"Factus refused account {claimed.account.username} (403): "
                           f"{exc}; fix the account's configuration, then retry the job")
    except AuthenticationError as exc:
        outcome = _Outcome(JobStatus.FAILED, code=exc.reason, http_status=exc.status_code,
                           message=f"Factus did not accept the credentials of "
                           f"{claimed.account.username}: {exc}")
    except FactusError as exc:
        if exc.transient and claimed.reconcile_only:
            outcome = _Outcome(JobStatus.FAILED, code="attempts_exhausted", outcome_unknown=True,
                               message=f"gave up after {claimed.max_attempts} attempts; the last "
                               f"may have reached Factus and the lookup failed ({exc.reason}); "
                               "`einvoice jobs retry` looks the reference up before any re-send")
        elif exc.transient:
            outcome = _retry_outcome(ctx, claimed, exc)
            if not posted:
                # No validate request left (a token, rate-slot or lookup failure): only an
                # earlier attempt's unknown outcome remains, which a failed lookup does not
                # settle.
                outcome.outcome_unknown = claimed.reconcile_first
        else:
            outcome = _Outcome(JobStatus.FAILED, code=exc.reason, http_status=exc.status_code,
                               message=str(exc))
    outcome.events[:0] = events
    return outcome


# ------------------------------------------------------------------------------------------
# Step 3: record
# ------------------------------------------------------------------------------------------


class _Change:
    """What one step does to a job: column values and events, written together by :meth:`apply`.

    One statement per step (:func:`job_repo.update_job`: the ``UPDATE``, the events' multi-row
    ``INSERT`` and, on acceptance, the invoice's ``UPDATE``), instead of an ORM flush per change
    and per event (the hot path's cost in benchmark B1).

    Args:
        attempt: the job's ``attempt_count`` as claimed (events carry it).
    """

    def __init__(self, attempt: int) -> None:
        self.attempt = attempt
        self.values: dict[str, Any] = {}
        self.events: list[job_repo.EventSpec] = []

    def event(self, event_type: str, code: str | None, message: str | None,
              metadata: dict[str, Any] | None) -> None:
        """Append one event (written in order)."""
        self.events.append((event_type, code, message, metadata))

    def decide(self, decision: Decision, *, message: str | None,
               metadata: dict[str, Any] | None = None) -> None:
        """Write what the domain decided (:func:`einvoice.domain.jobs.transition`): a final
        status with :meth:`finish`, or a wait with :meth:`reschedule` (its ``outcome_unknown``
        is left as it is; the record step sets it)."""
        if decision.final:
            self.finish(decision.status, code=decision.error_code, message=message,
                        metadata=metadata, outcome_unknown=decision.outcome_unknown)
        else:
            self.reschedule(delay=decision.delay or 0.0, code=decision.error_code or "retry",
                            message=message or "", count_attempt=decision.count_attempt,
                            event_type=decision.event_type, status=decision.status)

    def finish(self, status: JobStatus, *, code: str | None, message: str | None,
               metadata: dict[str, Any] | None = None, outcome_unknown: bool = False) -> None:
        """Move the claimed job to a final ``status`` with an event.

        ``outcome_unknown`` stays True on a job given up while an attempt may have reached
        Factus, so that an operator's retry looks the reference up before sending.
        """
        self.values.update(status=status, error_code=code, error_message=message,
                           processed_at=job_repo.NOW, lease_expires_at=None,
                           outcome_unknown=outcome_unknown, updated_at=job_repo.NOW)
        self.event(status, code, message, {"attempt": self.attempt,
                                           "from": JobStatus.PROCESSING, "to": status,
                                           **(metadata or {})})

    def reschedule(self, *, delay: float, code: str, message: str, count_attempt: bool,
                   event_type: str, status: JobStatus) -> None:
        """Put the job back (``pending``, or ``sent`` for a DIAN re-check) due in ``delay`` s.

        ``count_attempt=False`` gives the claimed attempt back (a wait is not an attempt).
        """
        if not count_attempt:
            self.attempt -= 1
            self.values["attempt_count"] = job_repo.Sql("attempt_count - 1")
        self.values.update(status=status, dispatched_at=None, lease_expires_at=None,
                           next_retry_at=job_repo.Sql("now() + make_interval(secs => :delay)",
                                                      delay=float(delay)),
                           error_code=code, error_message=message, updated_at=job_repo.NOW)
        self.event(event_type, code, message, {"attempt": self.attempt,
                                               "from": JobStatus.PROCESSING, "to": status,
                                               "delay_s": round(delay, 3)})

    def apply(self, session: Session, job_id: uuid.UUID, *, lease: tuple[str, int] | None = None,
              validated: dict[str, Any] | None = None) -> uuid.UUID | None:
        """Write the change in one statement (:func:`job_repo.update_job`): the job's values,
        its events and, with ``validated``, the invoice's CUFE, number, QR and validation time.

        Args:
            lease: (worker, attempt): write only while that worker still holds that attempt's
                lease; otherwise write nothing.
            validated: the invoice's side of an acceptance (see :func:`job_repo.update_job`).
        Returns:
            The job's ``invoice_id`` when the job matched, None when the lease was lost.
        """
        return job_repo.update_job(session, job_id, self.values, lease=lease,
                                   events=self.events, validated=validated)


#: Outcome kinds after which a job's own pending document no longer blocks its account.
_SETTLED_KINDS = (JobStatus.ACCEPTED, JobStatus.REJECTED, JobStatus.FAILED)


def _step_outcome(outcome: _Outcome) -> StepOutcome:
    """The domain's view of what step 2 learned (:func:`einvoice.domain.jobs.transition`)."""
    kinds = {JobStatus.ACCEPTED: Outcome.ACCEPTED, JobStatus.REJECTED: Outcome.REJECTED,
             JobStatus.FAILED: Outcome.FAILED, "dian_slow": Outcome.DIAN_PENDING,
             "wait": Outcome.WAITING, "switch": Outcome.VERSION_SWITCHED, "retry": outcome.step}
    return StepOutcome(kinds[outcome.kind], code=outcome.code, wait=outcome.delay,
                       outcome_unknown=outcome.outcome_unknown, spread=outcome.spread)


def _record(ctx: WorkerContext, claimed: _Claimed, worker: str, outcome: _Outcome) -> str:
    change = _Change(claimed.attempt)
    for event in outcome.events:
        change.event(*event)
    if outcome.latency_ms is not None or outcome.http_status is not None:
        change.event("submitted", str(outcome.http_status or ""),
                     f"POST validate answered {outcome.http_status}",
                     {"attempt": claimed.attempt, "latency_ms": outcome.latency_ms})
    state = JobState(JobStatus.PROCESSING, claimed.attempt, own_pending=claimed.own_pending,
                     dian_rechecks=claimed.dian_rechecks)
    decision = transition(state, _step_outcome(outcome),
                          retry_policy(ctx.settings, claimed.max_attempts), ctx.rng)
    if decision.status == JobStatus.ACCEPTED:
        _accepted_change(change, claimed, outcome)
    elif decision.final:
        if decision.gave_up:
            change.finish(decision.status, code=decision.error_code,
                          message=f"gave up after {claimed.attempt} attempts: {outcome.message}")
        else:
            change.decide(decision, message=outcome.message,
                          metadata={"http_status": outcome.http_status})
    else:
        change.values["outcome_unknown"] = decision.outcome_unknown
        if outcome.kind == "switch":
            change.event("api_version_switched", outcome.switch_to, outcome.message,
                         {"attempt": claimed.attempt, "from": claimed.account.api_version,
                          "to": outcome.switch_to, "account": claimed.account.username})
        message = outcome.message or ""
        if decision.last_look:
            message += " (outcome unknown: reconciling)"
        change.decide(decision, message=message)
    with UnitOfWork(ctx.session_factory) as uow:
        session = uow.session
        validated = None
        if outcome.kind == JobStatus.ACCEPTED:
            document = outcome.document
            assert document is not None
            validated = {"cufe": change.values["cufe"] or "", "number": document.number or "",
                         "qr_image": document.qr_image, "validated_at": document.validated_at}
        invoice_id = change.apply(session, claimed.job_id, lease=(worker, claimed.attempt),
                                  validated=validated)
        if invoice_id is None:
            log.warning("job %s: lease lost before recording %s; the new holder reconciles",
                        claimed.job_id, outcome.kind)
            return "lease_lost"
        _remember_version(session, claimed, outcome)
        # The PDF and XML are downloaded once by a follow-up, published after this
        # commit (unless EINVOICE_ARCHIVE_DOCUMENTS is off).
        if outcome.kind == JobStatus.ACCEPTED and ctx.settings.einvoice_archive_documents:
            schedule_archive(session, claimed.job_id)
        if claimed.own_pending and outcome.kind in _SETTLED_KINDS:
            # Its document no longer blocks the account: the jobs waiting for it go now.
            job_repo.wake_jobs_waiting_for_account(session, claimed.organization_id,
                                                   claimed.document_type)
        uow.commit()
    if outcome.kind == "switch" and claimed.resolved is not None:
        ctx.forget_account(claimed.account.token_key)
        return "version_switched"
    return outcome.kind


def _remember_version(session: Session, claimed: _Claimed, outcome: _Outcome) -> None:
    """What an ``auto`` account's attempt taught about its API version, stored for every worker:
    Factus refused the version in use (``switch``), or a document was accepted through a version
    no finding was stored for yet (kept, so ``einvoice accounts`` shows it; written once per
    account, since the next resolution reads it)."""
    resolved = claimed.resolved
    if resolved is None or not resolved.is_auto:
        return
    if outcome.kind == "switch" and outcome.switch_to:
        remember_version(session, resolved, outcome.switch_to,
                         organization_id=claimed.organization_id, replace=True,
                         detected_by=f"{outcome.code}: {outcome.message}")
    elif outcome.kind == JobStatus.ACCEPTED and resolved.detected is None:
        version = claimed.account.api_version
        remember_version(session, resolved, version, organization_id=claimed.organization_id,
                         replace=False, detected_by=f"job {claimed.job_id} accepted through "
                         f"API {version}")


def _accepted_change(change: _Change, claimed: _Claimed, outcome: _Outcome) -> None:
    document = outcome.document
    assert document is not None
    code = document.cude if isinstance(document, CreditNoteResult) else document.cufe
    change.values.update(
        status=JobStatus.ACCEPTED, cufe=code, qr_code=document.qr, response_payload=document.raw,
        document_number=document.number, factus_document_id=document.id,
        processed_at=job_repo.NOW, lease_expires_at=None, outcome_unknown=False,
        error_code=None, error_message=None, updated_at=job_repo.NOW)
    for rule in document.notifications:
        change.event("dian_notification", rule.code, rule.text, {"number": document.number})
    change.event(EventType.ACCEPTED, document.number, f"validated by DIAN as {document.number}",
                 {"attempt": claimed.attempt, "from": JobStatus.PROCESSING,
                  "to": JobStatus.ACCEPTED,
                  "number": document.number, "cufe": code})


# ------------------------------------------------------------------------------------------
# Entry point
# ------------------------------------------------------------------------------------------


def submit_job(ctx: WorkerContext, job_id: uuid.UUID | str) -> str:
    """Get one job's document validated by Factus, or move it one step closer.

    Args:
        ctx: the process's resources.
        job_id: ``electronic_invoicing_jobs.id``.
    Returns:
        What happened: ``not_due`` (nothing to do: duplicate delivery, job final or not due),
        ``accepted``, ``dian_slow``, ``rejected``, ``failed``, ``retry``, ``waiting``,
        ``lease_lost`` (another worker holds the job now; nothing sent or written),
        ``internal_error`` (an unexpected exception ended the job ``failed`` with
        ``error_code=internal_error``) or ``version_switched`` (Factus refused the ``auto``
        account's API version, the new one was stored, and the job, due now and with its
        attempt given back, could not be run again at once: any worker takes it).

    An ``auto`` account refused its API version is moved to the other one and the job's step
    runs again at once through it (:func:`_version_refused`), so its outcome is the re-run's.
    Raises:
        An infrastructure error (:data:`~einvoice.services.runner.INFRASTRUCTURE_ERRORS`, e.g.
        ``sqlalchemy.exc.OperationalError``): PostgreSQL unreachable while claiming (nothing
        changed; the task retries, and the dispatcher re-publishes the job anyway), or for
        longer than 60 s while recording (the lease expires and the sweeper reconciles the job).
        Nothing else: any other exception ends the job (``internal_error``).
    """
    job_uuid = uuid.UUID(str(job_id))
    result = _submit_once(ctx, job_uuid)
    if result == "version_switched":
        # The account's version was just stored (and this process's cache dropped): run the
        # step again now, through it, instead of waiting for the dispatcher. Once: a second
        # switch cannot happen (auto only moves v1 -> v2).
        result = _submit_once(ctx, job_uuid)
    return result


def _submit_once(ctx: WorkerContext, job_uuid: uuid.UUID) -> str:
    """One claim, call and record of :func:`submit_job` (its results and errors)."""
    worker = thread_worker_id(ctx)
    started = time.monotonic()
    until = started + attempt_budget_seconds(ctx.settings)
    unfenced_until = started + unfenced_seconds(ctx.settings)
    try:
        claimed = _claim(ctx, job_uuid, worker)
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        return _fail_unclaimed(ctx, job_uuid, worker, exc)
    if isinstance(claimed, str):
        return claimed
    try:
        outcome = _call_factus(ctx, claimed, worker, until, unfenced_until)
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        log.exception("job %s attempt %d: unexpected error while calling Factus",
                      job_uuid, claimed.attempt)
        # A request may have left: the outcome stays unknown, a retry looks the reference up.
        outcome = _Outcome(JobStatus.FAILED, code="internal_error", outcome_unknown=True,
                           message=_internal_message("calling Factus", exc))
        outcome.events.append(("internal_error", type(exc).__name__, _exception_text(exc),
                               {"step": "call", "exception": _exception_type(exc)}))
    if outcome.kind == "lease_lost":
        log.warning("job %s attempt %d: %s", job_uuid, claimed.attempt, outcome.message)
        return "lease_lost"
    try:
        result = record_retrying(lambda: _record(ctx, claimed, worker, outcome))
    except Exception as exc:
        if is_infrastructure_error(exc):
            raise
        result = _fail_claimed(ctx, claimed, worker, exc)
    log.info("job %s attempt %d: %s %s", job_uuid, claimed.attempt, result, outcome.code or "")
    return result


def _exception_type(exc: BaseException) -> str:
    kind = type(exc)
    return kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"


def _exception_text(exc: BaseException, limit: int = 1000) -> str:
    """``Type: message`` of ``exc``, storable in a text column (no NUL) and at most ``limit``
    characters."""
    text_ = f"{type(exc).__name__}: {exc}".replace("\x00", "\\x00")
    return text_ if len(text_) <= limit else text_[: limit - 1] + "…"


def _internal_message(step: str, exc: BaseException) -> str:
    return (f"internal error while {step}: {_exception_text(exc, 400)}; fix the cause (the "
            "invoice's rows, or report the bug), then `einvoice jobs retry`")


def _fail_unclaimed(ctx: WorkerContext, job_id: uuid.UUID, worker: str, exc: Exception) -> str:
    """End a job whose claim or payload build raised ``exc`` (the claim was rolled back).

    Without this, the job stayed due, uncounted, and was re-published and crashed again every
    minute, forever (and a wake-up message carrying several jobs lost the ones after it).
    Returns ``internal_error``, or ``not_due`` when another worker took the job meanwhile.
    """
    log.exception("job %s: unexpected error while claiming or building its payload", job_id)
    try:
        with UnitOfWork(ctx.session_factory) as uow:
            unknown = job_repo.fail_unclaimed_job(
                uow.session, job_id, worker=worker, code="internal_error",
                message=_internal_message("claiming the job or building its payload", exc),
                metadata={"step": "claim", "exception": _exception_type(exc),
                          "detail": _exception_text(exc)})
            uow.commit()
    except Exception as fail_exc:
        if is_infrastructure_error(fail_exc):
            raise
        log.exception("job %s: could not even mark it failed; it stays due", job_id)
        return "internal_error"
    if unknown is None:
        return "not_due"
    return "internal_error"


def _fail_claimed(ctx: WorkerContext, claimed: _Claimed, worker: str, exc: Exception) -> str:
    """End a claimed job whose outcome could not be recorded because of ``exc``.

    The call to Factus may have created the document, so ``outcome_unknown`` is kept: an
    operator's retry looks the reference code up before sending anything. Written under the
    same lease guard as any outcome. Returns ``internal_error`` (or ``lease_lost``).
    """
    log.exception("job %s attempt %d: unexpected error while recording its outcome",
                  claimed.job_id, claimed.attempt)
    change = _Change(claimed.attempt)
    change.finish(JobStatus.FAILED, code="internal_error",
                  message=_internal_message("recording the outcome", exc), outcome_unknown=True,
                  metadata={"step": "record", "exception": _exception_type(exc),
                            "detail": _exception_text(exc)})

    def write() -> str:
        with UnitOfWork(ctx.session_factory) as uow:
            if change.apply(uow.session, claimed.job_id,
                            lease=(worker, claimed.attempt)) is None:
                return "lease_lost"
            uow.commit()
        return "internal_error"

    try:
        return record_retrying(write)
    except Exception as fail_exc:
        if is_infrastructure_error(fail_exc):
            raise
        # The job stays ``processing`` until its lease expires; the sweeper then hands it
        # back with its outcome unknown, and the next attempt looks the reference up first.
        log.exception("job %s: could not even mark it failed", claimed.job_id)
    return "internal_error"


def submit_jobs(
    ctx: WorkerContext,
    job_ids: Sequence[uuid.UUID | str],
    *,
    requeue: Callable[[list[uuid.UUID]], None],
    budget_seconds: float = 60.0,
) -> dict[str, int]:
    """Run :func:`submit_job` for each of ``job_ids`` in turn (one wake-up message of a burst,
    :func:`einvoice.queueing.wakeup_chunks`).

    Each job is claimed, sent and recorded exactly as on its own; a job already taken or final
    is a no-op, so a message delivered twice is harmless. After ``budget_seconds`` the jobs not
    started yet are handed to ``requeue`` (published again as a new message) and this call
    returns: a message is never held unacknowledged long enough to approach the broker's
    visibility timeout (300 s), however slow Factus is.

    Args:
        ctx: the process's resources.
        job_ids: ``electronic_invoicing_jobs.id`` values.
        requeue: publishes the wake-ups of the jobs left over (e.g. the publisher's
            ``publish_submit_many``).
        budget_seconds: how long to keep starting new jobs.
    Returns:
        ``{outcome: count}`` over the jobs run (outcomes as :func:`submit_job`), plus
        ``requeued`` when some were handed back.
    Raises:
        As :func:`submit_job`: an infrastructure error stops the run; the task retries the
        whole message, whose finished jobs are then no-ops. A job's own failure (any other
        exception) ends that job ``internal_error`` and the run goes on with the next.
    """
    outcomes: dict[str, int] = {}
    started = time.monotonic()
    ids = [uuid.UUID(str(job_id)) for job_id in job_ids]
    for index, job_id in enumerate(ids):
        if index and time.monotonic() - started > budget_seconds:
            requeue(ids[index:])
            outcomes["requeued"] = len(ids) - index
            break
        outcome = submit_job(ctx, job_id)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    return outcomes
