"""Step 3 of a submission: record what step 2 learned.

:func:`record_outcome` asks the domain what the outcome means
(:func:`einvoice.domain.jobs.transition`: accepted, DIAN slow, rejected, retry with backoff,
waiting, ``failed``) and writes it in one transaction, only while this worker still holds the
lease (same ``leased_by`` and attempt), so a worker that lost its lease never overwrites a
newer attempt. An acceptance also marks the invoice validated and schedules the archive of its
PDF and XML; a settled document wakes the jobs that waited behind it.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from einvoice.db import jobs as job_repo
from einvoice.db.uow import UnitOfWork
from einvoice.domain.jobs import EventType, JobState, JobStatus, Outcome, StepOutcome, transition
from einvoice.factus.schemas import CreditNoteResult
from einvoice.services.accounts import remember_version
from einvoice.services.claim import Claimed
from einvoice.services.documents import schedule_archive
from einvoice.services.factus_call import CallOutcome
from einvoice.services.job_change import JobChange
from einvoice.services.runner import WorkerContext, retry_policy

log = logging.getLogger(__name__)


#: Outcome kinds after which a job's own pending document no longer blocks its account.
_SETTLED_KINDS = (JobStatus.ACCEPTED, JobStatus.REJECTED, JobStatus.FAILED)


def _step_outcome(outcome: CallOutcome) -> StepOutcome:
    """The domain's view of what step 2 learned (:func:`einvoice.domain.jobs.transition`)."""
    kinds = {JobStatus.ACCEPTED: Outcome.ACCEPTED, JobStatus.REJECTED: Outcome.REJECTED,
             JobStatus.FAILED: Outcome.FAILED, "dian_slow": Outcome.DIAN_PENDING,
             "wait": Outcome.WAITING, "switch": Outcome.VERSION_SWITCHED, "retry": outcome.step}
    return StepOutcome(kinds[outcome.kind], code=outcome.code, wait=outcome.delay,
                       outcome_unknown=outcome.outcome_unknown, spread=outcome.spread)


def record_outcome(ctx: WorkerContext, claimed: Claimed, worker: str,
                   outcome: CallOutcome) -> str:
    """Write ``outcome`` (step 2's) onto the claimed job, in one transaction under the lease.

    Args:
        worker: the ``leased_by`` of the claim; nothing is written once another worker holds
            the job, or the sweeper released it.
    Returns:
        ``outcome.kind`` (``accepted``, ``dian_slow``, ``rejected``, ``failed``, ``retry``,
        ``wait``), ``lease_lost`` (nothing written), or ``version_switched`` (an ``auto``
        account's new API version stored; the job is due now with its attempt given back).
    Raises:
        A database error (the caller retries the transaction while PostgreSQL restarts,
        :func:`einvoice.services.runner.record_retrying`).
    """
    change = JobChange(claimed.attempt)
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


def _remember_version(session: Session, claimed: Claimed, outcome: CallOutcome) -> None:
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


def _accepted_change(change: JobChange, claimed: Claimed, outcome: CallOutcome) -> None:
    """Add an acceptance to ``change``: the job's CUFE (CUDE of a credit note), QR, number and
    Factus answer, DIAN's notifications as events, then the ``accepted`` event."""
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
